"""A RestrictedPython first-pass guard for model code.

It runs inside the sandbox runtime, before model code executes.  Ordinary
programs run under it exactly as they do without it; it refuses only the
routes out of its own policy, where model code would get power the guarded
code does not have:

* code that runs without the guard: eval/exec/compile, code objects,
  ``importlib``/``runpy``/``site`` and friends, programs (``subprocess``,
  ``os.system``/``exec*``/``spawn*``), native code (``ctypes``);
* what holds unguarded globals: frames (``sys._getframe``,
  ``inspect.currentframe``, ``f_globals``), ``__globals__``, ``__code__``,
  ``__closure__``, ``__builtins__``, ``gc.get_referrers`` & co.;
* the way to every class: ``__subclasses__``;
* the guard's own objects (``__self__`` of its hooks) and the runtime's modules;
* attribute reads done in C on the model's behalf (``str.format``,
  ``operator.attrgetter``, ``inspect.getmembers``, unpickling, ``timeit``
  strings, jinja2 templates), which get guarded stand-ins.

Everything else imports and runs: any installed library, the standard
library (``sys`` as a view without ``modules`` and the frame functions).  It
is defence in depth only: libraries such as sympy (``sympify``), pandas
(``eval``/``query``/``read_pickle``), numpy (``load(allow_pickle=True)``,
raw memory), tensorflow, or ``typing.get_type_hints`` inside a library
(``functools.singledispatch``, ``attrs.resolve_types``) on string
annotations made without the compiler (``type()``'s dict,
``dataclasses.make_dataclass``) can evaluate code or load native code on
the guard's behalf.  The OS sandbox (bubblewrap / Docker) is the boundary; this
file must never be the reason something is considered safe.

Use::

    ns = {}
    ns.update(guard_namespace())        # once per session
    exec(compile_guarded(source), ns)   # per run; ns persists between runs

The guard is stdlib + RestrictedPython + its sibling guard_views.py, because
the runtime imports it as a sibling module inside the sandbox.
"""

import ast
import builtins
import collections
import functools
import operator
import string
import sys
import types
import typing
import weakref
from _string import formatter_field_name_split

from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer, copy_locations

if __package__:  # the host's tests import agentic_vision.sandbox_runtime.guard
    from . import guard_views
    from .guard_views import GuardAttributeError, GuardError
else:  # the sandbox runtime imports it as a sibling module
    import guard_views
    from guard_views import GuardAttributeError, GuardError

__all__ = ["DEFAULT_DENIED_MODULES", "GuardError", "compile_guarded", "guard_namespace"]


# --------------------------------------------------------------------------
# Policy tables
# --------------------------------------------------------------------------

_PROGRAMS = "it runs programs or processes outside the guard; use Python libraries (threading or concurrent.futures for parallel work)"
_NATIVE = "it calls native code; use numpy for raw buffers"
_LOADERS = "it loads or resolves code outside the guard; use an import statement"
_COMPILERS = "it compiles code strings or hands out code objects and frames; write the code directly"
_RUNTIME = "it is the sandbox's own runtime"

# The modules model code may not import (with a submodule, everything under
# it), and why.  Every other module imports: the hosted libraries, any
# library installed in the sandbox's environment, the standard library.
# Private modules (a part starting with '_') are refused as well.
DEFAULT_DENIED_MODULES: dict[str, str] = {
    "ctypes": _NATIVE, "cffi": _NATIVE, "numpy.ctypeslib": _NATIVE,
    "numpy.f2py": "it compiles and loads native code", "numpy.distutils": "it compiles and loads native code",
    "subprocess": _PROGRAMS, "pty": _PROGRAMS, "matplotlib.testing": _PROGRAMS,
    "multiprocessing": _PROGRAMS + "; its connections also unpickle without the guard",
    "importlib": _LOADERS, "pkgutil": _LOADERS, "runpy": _LOADERS, "zipimport": _LOADERS, "site": _LOADERS,
    "code": _COMPILERS, "codeop": _COMPILERS, "marshal": _COMPILERS, "dis": _COMPILERS,
    "pdb": _COMPILERS, "bdb": _COMPILERS, "doctest": _COMPILERS, "trace": _COMPILERS,
    "cProfile": "it runs code strings without the guard; time code with time.perf_counter or timeit",
    "profile": "it runs code strings without the guard; time code with time.perf_counter or timeit",
    "pydoc": "it resolves names outside the guard; use help(obj)",
    "builtins": "it holds the unguarded built-ins; use the built-in names directly",
    "shelve": "it unpickles without the guard; use pickle or json",
    "logging.config": "it resolves and evaluates names from configuration; use logging.basicConfig",
    "agentic_vision": _RUNTIME, "guard": _RUNTIME, "guard_views": _RUNTIME, "interpreter": _RUNTIME,
    "broker": _RUNTIME, "capture": _RUNTIME, "protocol": _RUNTIME, "tracebacks": _RUNTIME,
    "input_cache": _RUNTIME, "returned": _RUNTIME,
}

# os functions refused to model code (by object identity, so re-exports such
# as ``posix.system`` or ``shutil.os.system`` are refused too).  Everything
# else in os stays usable: listdir, scandir, walk, makedirs, remove, rename,
# stat, getcwd, path, environ ...
OS_PROGRAMS = (
    "system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
    "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
    "spawnvpe", "posix_spawn", "posix_spawnp", "fork", "forkpty", "register_at_fork",
)
OS_PROCESSES = (
    "kill", "killpg", "abort", "setuid", "seteuid", "setgid", "setegid", "setreuid",
    "setregid", "setresuid", "setresgid", "setgroups", "initgroups", "setsid", "setpgid",
    "setpgrp", "chroot",
)
_FRAMES = "frames hold unguarded globals; use traceback.format_exc() or traceback.extract_stack() for where you are"
_UNGUARDED_GETATTR = "it reads attributes without the guard; use getattr() or inspect.getmembers()"

# module -> {name: why}: objects model code may not obtain, wherever from.
# Looked up once the module is imported (by anyone), by identity.
_FORBIDDEN_BY_MODULE: dict[str, dict[str, str]] = {
    "builtins": {
        "eval": "write the expression directly (ast.literal_eval parses literals)",
        "exec": "write the code directly", "compile": "write the code directly",
        "breakpoint": "print the values you need", "__import__": "use an import statement",
        "getattr": _UNGUARDED_GETATTR, "setattr": _UNGUARDED_GETATTR, "delattr": _UNGUARDED_GETATTR,
        "vars": _UNGUARDED_GETATTR, "globals": _FRAMES, "locals": _FRAMES,
    },
    "os": {
        **{name: "it runs programs outside the guard; use Python libraries" for name in OS_PROGRAMS},
        **{name: "it acts on processes outside your code" for name in OS_PROCESSES},
        "chdir": "outputs are collected from the working directory; use paths instead",
        "fchdir": "outputs are collected from the working directory; use paths instead",
    },
    "subprocess": {name: _PROGRAMS for name in ("Popen", "run", "call", "check_call", "check_output",
                                                   "getoutput", "getstatusoutput")},
    "sys": {"_getframe": _FRAMES, "settrace": _FRAMES, "setprofile": _FRAMES, "modules": "import the module instead",
            "_current_frames": _FRAMES},
    "gc": {name: "it reaches any object, the guard's included; gc.collect() and gc.get_count() are available"
           for name in ("get_objects", "get_referrers", "get_referents")},
    "threading": {name: _FRAMES for name in ("settrace", "setprofile", "settrace_all_threads", "setprofile_all_threads")},
    "inspect": {
        **{name: _FRAMES for name in ("currentframe", "stack", "trace", "getouterframes", "getinnerframes",
                                      "getargvalues", "getclosurevars")},
        "getattr_static": _UNGUARDED_GETATTR, "getmembers_static": _UNGUARDED_GETATTR,
    },
    "traceback": {"walk_stack": _FRAMES, "walk_tb": _FRAMES},
    "logging": {"currentframe": _FRAMES},
    "typing": {"get_type_hints": "it evaluates string annotations; read __annotations__ instead"},
    "string": {"Formatter": "its get_field reads attributes without the guard; use str.format"},
    "types": {"CodeType": _COMPILERS},
    "importlib": {"import_module": "use an import statement"},
    "six": {name: _UNGUARDED_GETATTR for name in (
        "get_function_globals", "get_function_code", "get_function_closure", "get_method_self",
        "get_method_function", "get_unbound_function", "exec_", "create_bound_method")},
}

# Attributes no object may give model code (read or written), and why.
REFUSED_DUNDERS: dict[str, str] = {
    "__globals__": "a function's globals are not its callers'",
    "__builtins__": "the unguarded built-ins",
    "__code__": "code objects run without the guard",
    "__closure__": "closure cells hold unguarded objects",
    "__subclasses__": "it reaches every class",
    "__self__": "bound methods' owners include the guard's own objects",
    "__func__": "bound methods' functions include the guard's own",
    "__getattribute__": _UNGUARDED_GETATTR, "__getattr__": _UNGUARDED_GETATTR,
    "__setattr__": _UNGUARDED_GETATTR, "__delattr__": _UNGUARDED_GETATTR,
    "__reduce__": "it hands out the unguarded getattr; use copy or pickle",
    "__reduce_ex__": "it hands out the unguarded getattr; use copy or pickle",
    "__loader__": _LOADERS, "__spec__": _LOADERS, "__import__": "use an import statement",
    "__forward_code__": "code objects run without the guard",
}

# Frame, traceback, generator and coroutine internals (RestrictedPython's list).
FRAME_ATTRIBUTES = INSPECT_ATTRIBUTES

# Dunder attributes model code may assign (its own classes' special methods
# are defined in the class body; these are the ones programs also set later).
WRITABLE_DUNDERS = frozenset({
    "__doc__", "__name__", "__qualname__", "__wrapped__", "__repr__", "__str__",
    "__eq__", "__hash__", "__lt__", "__le__", "__gt__", "__ge__", "__len__", "__iter__",
    "__getitem__", "__setitem__", "__contains__", "__call__", "__bool__", "__format__",
})

# Builtins that give new code; refused as plain names.
REFUSED_NAMES = {
    "eval": _FORBIDDEN_BY_MODULE["builtins"]["eval"], "exec": "write the code directly",
    "compile": "write the code directly", "breakpoint": "print the values you need",
}
REFUSED_PLAIN_NAMES = {
    "__builtins__": "use the built-in names directly", "__import__": "use an import statement",
    # typing.get_type_hints, called by libraries (functools.singledispatch,
    # attrs.resolve_types), evaluates string annotations without the guard.
    "__annotations__": "write annotations as `name: type`",
}

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "classmethod", "complex", "dict", "dir", "divmod", "enumerate", "filter", "float", "format",
    "frozenset", "hasattr", "hash", "hex", "id", "input", "int", "isinstance", "issubclass", "iter",
    "len", "list", "map", "max", "memoryview", "min", "next", "object", "oct", "open", "ord",
    "pow", "print", "property", "range", "repr", "reversed", "round", "set", "slice", "sorted",
    "staticmethod", "str", "sum", "super", "tuple", "type", "zip", "Ellipsis", "NotImplemented",
    "aiter", "anext", "exit", "quit", "help", "copyright", "credits", "license", "__debug__",
)
# print is the real builtin: with file=None it writes to sys.stdout as it is
# at call time, which the runtime redirects.  hasattr and dir only return
# bools and strings.  open is unrestricted: paths are the OS sandbox's job.
# exit/quit/help come from site (sys.exit and pydoc underneath), as in plain Python.

_STRING_TYPES = (str, collections.UserString)
_FORMATTER_METHODS = frozenset({"format", "format_map", "vformat", "get_field"})


# Nodes a string annotation ("Node", "np.ndarray", "list[Node]") may contain.
# Libraries eval() such strings unguarded (functools.singledispatch,
# attrs.resolve_types via typing.get_type_hints), so nothing else may hide there.
_ANNOTATION_NODES = (
    ast.Expression, ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.Constant,
    ast.BinOp, ast.BitOr, ast.Load,
)


def _plain_annotation(text: str) -> bool:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _ANNOTATION_NODES):
            return False
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        if name.startswith("_"):
            return False
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and not _plain_annotation(node.value):
            return False
    return True


def _attribute_refusal(name: str) -> str | None:
    """The refusal for reading an attribute name on any object, or None."""
    why = REFUSED_DUNDERS.get(name)
    if why is None and name in FRAME_ATTRIBUTES:
        why = _FRAMES
    return None if why is None else f"access to '{name}' is not allowed in this sandbox: {why}"


def _write_refusal(name: str) -> str | None:
    refusal = _attribute_refusal(name)
    if refusal is None and name[:2] == "__" and name[-2:] == "__" and name not in WRITABLE_DUNDERS:
        refusal = f"assigning '{name}' is not allowed in this sandbox; define special methods in the class body"
    return refusal


# --------------------------------------------------------------------------
# Run-time hooks
# --------------------------------------------------------------------------

# Classes created by model code: the only classes it may modify (writes to
# library classes would poison them for the runtime and later runs).
_SANDBOX_CLASSES: "weakref.WeakSet[type]" = weakref.WeakSet()


def _build_class(func, name, *bases, **kwargs):
    cls = builtins.__build_class__(func, name, *bases, **kwargs)
    if isinstance(cls, type):
        _SANDBOX_CLASSES.add(cls)
    return cls


def _unguarded(obj, *_ignored):
    # _getiter_, _iter_unpack_sequence_ and _unpack_sequence_: RestrictedPython
    # emits them around every loop and unpacking; iteration needs no guard
    # here, so they hand the object back and Python's own semantics apply.
    return obj


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand,
    "@=": operator.imatmul,
}


def _inplacevar(op, target, value):
    # ``a += 1`` becomes ``a = _inplacevar_('+=', a, 1)``: operator.iadd keeps
    # numpy's in-place semantics (the same array object comes back).
    return _INPLACE[op](target, value)


class _SafeFormatter(string.Formatter):
    """str.format whose "{0.attr}" lookups go through the guard."""

    def __init__(self, getattr_) -> None:
        self._getattr = getattr_

    def get_field(self, field_name, args, kwargs):
        first, rest = formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = self._getattr(obj, key) if is_attr else obj[key]
        return obj, first


_FORBID, _SUBSTITUTE = 0, 1
_SQLITE_LOADERS = frozenset({"enable_load_extension", "load_extension"})
# Only these attrgetter/methodcaller objects exist unguarded in model code:
# ones a library made (six.get_function_globals is attrgetter('__globals__')).
_GETTER_TYPES = (operator.attrgetter, operator.methodcaller)


class _Policy:
    """The run-time checks for one set of denied modules."""

    def __init__(self, denied: dict[str, str]) -> None:
        self.denied = denied
        self._module_cache: dict[str, str | None] = {}
        self._formatter = _SafeFormatter(self.getattr)
        self.sys_view = guard_views.SysView()
        # id -> (object, _FORBID, message) or (object, _SUBSTITUTE, stand-in),
        # filled per module once it is imported (see _sync).
        self._table: dict[int, tuple[object, int, object]] = {}
        self._pending = set(_FORBIDDEN_BY_MODULE) | {"operator", "inspect", "pickle", "_pickle", "timeit", "jinja2"}
        self._seen_modules = -1
        self._sync()

    # -- the identity table ----------------------------------------------------

    def _sync(self) -> None:
        """Registers the objects of every watched module imported since the last call."""
        self._seen_modules = len(sys.modules)
        for modname in [m for m in self._pending if m in sys.modules]:
            self._pending.discard(modname)
            module = sys.modules[modname]
            for name, why in _FORBIDDEN_BY_MODULE.get(modname, {}).items():
                obj = module.__dict__.get(name)
                if obj is not None:
                    label = f"{modname}.{name}"
                    self._table.setdefault(id(obj), (obj, _FORBID, f"'{label}' is not allowed in this sandbox: {why}"))
            for name, stand_in in self._stand_ins(modname, module).items():
                obj = module.__dict__.get(name)
                if obj is not None:
                    self._table[id(obj)] = (obj, _SUBSTITUTE, stand_in)

    def _stand_ins(self, modname: str, module) -> dict:
        if modname == "operator":
            return {"attrgetter": self.attrgetter, "methodcaller": self.methodcaller}
        if modname == "inspect":
            return {"getmembers": guard_views.getmembers(self.getattr),
                    "get_annotations": guard_views.get_annotations(module.get_annotations)}
        if modname in ("pickle", "_pickle"):
            return guard_views.unpickling(self.find_class, self._check_value)
        if modname == "timeit":
            return guard_views.timing(lambda source, filename: compile_guarded(source, filename, denied_modules=self.denied),
                                      self.namespace())
        if modname == "jinja2":
            return guard_views.jinja2_sandboxed(module)
        return {}

    # -- modules ------------------------------------------------------------

    def module_refusal(self, name: str) -> str | None:
        """Why module ``name`` is refused (also as a value reached through attributes), or None."""
        refusal = self._module_cache.get(name, "")
        if refusal == "":
            refusal = None
            parts = name.split(".")
            for i in range(len(parts)):
                why = self.denied.get(".".join(parts[: i + 1]))
                if why:
                    refusal = f"'{name}' is not allowed in this sandbox: {why}"
                    break
            if refusal is None and parts[0].startswith("_") and parts[0] != "__future__":
                refusal = f"'{name}': private modules are not allowed in this sandbox"
            self._module_cache[name] = refusal
        return refusal

    def import_refusal(self, name: str) -> str | None:
        refusal = self.module_refusal(name)
        if refusal:
            return "import of " + refusal
        if any(part.startswith("_") for part in name.split(".")[1:]):
            return f"'{name}': private modules are not allowed in this sandbox"
        return None

    def from_import_refusal(self, module: str, item: str) -> str | None:
        refusal = self.import_refusal(module)
        if refusal:
            return refusal
        label = f"{module}.{item}"
        if item.startswith("_") and not (item.startswith("__") and item.endswith("__")):
            return f"'{label}': private module attributes are not allowed in this sandbox"
        if item in REFUSED_DUNDERS:
            return _attribute_refusal(item)
        why = _FORBIDDEN_BY_MODULE.get(module, {}).get(item)
        if why:
            return f"'{label}' is not allowed in this sandbox: {why}"
        if module == "sys" and item not in guard_views.SYS_NAMES and item not in guard_views.SYS_STREAMS:
            return f"'sys.{item}' is not available in this sandbox; {guard_views.SYS_HAS}"
        refusal = self.module_refusal(label)
        return refusal and "import of " + refusal

    def import_(self, name, globals=None, locals=None, fromlist=(), level=0):
        """__import__ for model code; the compile-time check already ran."""
        if type(fromlist) is list:
            # C code (PyImport_Import, e.g. numpy importing numpy._core._methods
            # lazily) looks __import__ up in the *calling frame's* builtins, which
            # are these when model code called the library; it passes a list.
            # Import statements pass None or a tuple, and model code cannot
            # reach this function to call it directly.  Libraries import freely.
            return builtins.__import__(name, globals, locals, fromlist, level)
        if level:
            raise GuardError("relative imports are not allowed in this sandbox; import by the full name")
        fromlist = tuple(fromlist or ())
        refusal = self.import_refusal(name)
        if refusal:
            raise GuardError(refusal)
        module = builtins.__import__(name, None, None, fromlist, 0)
        if not fromlist:
            return self.sys_view if module is sys else module
        # ``from m import x`` reads x with a plain getattr on what we return:
        # hand back a module of guarded lookups instead.
        view = types.ModuleType(name)
        if fromlist == ("*",):
            names = getattr(module, "__all__", None)
            if names is None:
                names = [n for n in dir(module) if not n.startswith("_")]
            for item in names:
                try:
                    setattr(view, item, self.getattr(module, item))
                except (GuardError, AttributeError):  # left out, as a private name would be
                    pass
            view.__all__ = [n for n in names if n in view.__dict__]
            return view
        for item in fromlist:
            refusal = self.from_import_refusal(name, item)
            if refusal:
                raise GuardError(refusal)
            try:
                setattr(view, item, self.getattr(module, item))
            except AttributeError:
                raise ImportError(f"cannot import name '{item}' from '{name}'", name=name) from None
        return view

    def find_class(self, module: str, name: str):
        """Unpickling's lookup of a global: the import policy, then the value checks."""
        refusal = self.module_refusal(module)
        parts = name.split(".")
        if refusal is None and parts[0].startswith("_") and module.split(".")[0] in sys.stdlib_module_names:
            refusal = f"'{module}.{name}': private names of the standard library are not allowed in this sandbox"
        refused_part = next((p for p in parts if _attribute_refusal(p)), None)
        if refusal is None and refused_part:
            refusal = _attribute_refusal(refused_part)
        if refusal:
            raise GuardError(f"unpickling {refusal}")
        __import__(module)
        value = sys.modules[module]
        for part in parts:  # the parts were checked above; the value is checked below
            value = getattr(value, part)
        return self._check_value(value)

    # -- attributes -----------------------------------------------------------

    def getattr(self, obj, name, *default):
        """_getattr_ (every ``obj.name`` in model code) and the getattr builtin."""
        if type(name) is not str:
            raise TypeError(f"attribute name must be string, not '{type(name).__name__}'")
        if obj is sys:
            obj = self.sys_view
        if name[:1] == "_" or name in FRAME_ATTRIBUTES:
            refusal = _attribute_refusal(name)
            if refusal:
                raise GuardError(refusal)
            if name == "__dict__":
                try:
                    return self.dict_of(obj)
                except AttributeError:
                    if default:
                        return default[0]
                    raise
            if isinstance(obj, typing.ForwardRef):  # ._evaluate() is eval()
                raise GuardError("access to typing.ForwardRef internals is not allowed in this sandbox")
        if isinstance(obj, types.ModuleType):
            self._check_module_access(obj, name)
        elif name in _FORMATTER_METHODS:
            replacement = self._format_method(obj, name)
            if replacement is not None:
                return replacement
        elif name in _SQLITE_LOADERS and type(obj).__module__ == "sqlite3":
            raise GuardError(f"'{name}' is not allowed in this sandbox: {_NATIVE}")
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if name == "__annotations__" and type(value) is dict:
            # Read-only: a string put into it would be evaluated by
            # typing.get_type_hints inside a library, without the guard.
            return types.MappingProxyType(value)
        if name in ("__defaults__", "__kwdefaults__") and value:
            for item in (value.values() if isinstance(value, dict) else value):
                self._check_value(item)
        return self._check_value(value)

    def _check_module_access(self, module, name: str) -> None:
        modname = module.__dict__.get("__name__")
        if not isinstance(modname, str):
            raise GuardError("access to this module is not allowed in this sandbox")
        refusal = self.module_refusal(modname)
        if refusal:
            raise GuardError(f"module {refusal}")
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            raise GuardError(f"'{modname}.{name}': private module attributes are not allowed in this sandbox")

    def _check_value(self, value):
        if len(sys.modules) != self._seen_modules and self._pending:
            self._sync()
        hit = self._table.get(id(value))
        if hit is not None and hit[0] is value:
            if hit[1] == _FORBID:
                raise GuardError(hit[2])
            return hit[2]
        if isinstance(value, types.ModuleType):
            if value is sys:
                return self.sys_view
            modname = value.__dict__.get("__name__")
            refusal = self.module_refusal(modname) if isinstance(modname, str) else "this module is not allowed"
            if refusal:
                raise GuardError(f"module {refusal}")
        elif type(value) in _GETTER_TYPES:
            # repr: operator.attrgetter('a.b', 'c') / operator.methodcaller('name', ...)
            names = [part for piece in repr(value).split("'")[1::2] for part in piece.split(".")]
            for part in names:
                refusal = _attribute_refusal(part)
                if refusal:
                    raise GuardError(refusal)
        return value

    def dict_of(self, obj, via_vars: bool = False):
        """``obj.__dict__`` / ``vars(obj)``: instances and the model's own classes."""
        if isinstance(obj, types.ModuleType):
            raise GuardError("the __dict__ of a module is not allowed in this sandbox; use dir(module) and getattr()")
        if isinstance(obj, type):
            if obj not in _SANDBOX_CLASSES:
                raise GuardError(f"the __dict__ of class '{obj.__name__}' is not allowed in this sandbox "
                                 "(only of classes defined in your code); use dir() and getattr()")
            return obj.__dict__
        found = builtins.vars(obj) if via_vars else obj.__dict__  # their own TypeError / AttributeError
        if type(obj) not in _SANDBOX_CLASSES and isinstance(found, dict):
            for value in list(found.values()):
                self._check_value(value)
        return found

    def _format_method(self, obj, name: str):
        """Guarded str.format/format_map."""
        is_class = isinstance(obj, type)
        if isinstance(obj, _STRING_TYPES) or (is_class and issubclass(obj, _STRING_TYPES)):
            vformat = self._formatter.vformat
            if name == "format":
                if is_class:
                    return lambda self, *args, **kwargs: vformat(str(self), args, kwargs)
                return lambda *args, **kwargs: vformat(str(obj), args, kwargs)
            if name == "format_map":
                if is_class:
                    return lambda self, mapping: vformat(str(self), (), mapping)
                return lambda mapping: vformat(str(obj), (), mapping)
        elif isinstance(obj, string.Formatter) or (is_class and issubclass(obj, string.Formatter)):
            raise GuardError(f"'string.Formatter' is not allowed in this sandbox: {_FORBIDDEN_BY_MODULE['string']['Formatter']}")
        return None

    def attrgetter(self, attr, *attrs):
        paths = []
        for item in (attr, *attrs):
            if not isinstance(item, str):
                raise TypeError("attribute name must be a string")
            paths.append(item.split("."))
        getattr_ = self.getattr

        def get(obj):
            values = []
            for path in paths:
                value = obj
                for part in path:
                    value = getattr_(value, part)
                values.append(value)
            return values[0] if len(values) == 1 else tuple(values)

        return get

    def methodcaller(self, name, /, *args, **kwargs):
        getattr_ = self.getattr
        return lambda obj: getattr_(obj, name)(*args, **kwargs)

    # -- writes -------------------------------------------------------------

    def write(self, obj):
        """_write_: wraps the target of ``obj.x = ...``, ``obj[k] = ...``, del."""
        if obj is self.sys_view or obj is sys:
            return self.sys_view  # it allows stdout/stderr/stdin/argv and refuses the rest itself
        if isinstance(obj, types.ModuleType):
            raise GuardError(f"modifying module '{obj.__dict__.get('__name__', '?')}' is not allowed in this sandbox")
        if isinstance(obj, type) and obj not in _SANDBOX_CLASSES:
            raise GuardError(
                f"modifying class '{obj.__name__}' is not allowed in this sandbox "
                "(only classes defined in your code can be changed)"
            )
        return obj

    def setattr(self, obj, name, value):
        refusal = _write_refusal(name) if isinstance(name, str) else None
        if refusal:
            raise GuardError(refusal)
        setattr(self.write(obj), name, value)

    def delattr(self, obj, name):
        refusal = _write_refusal(name) if isinstance(name, str) else None
        if refusal:
            raise GuardError(refusal)
        delattr(self.write(obj), name)

    def vars(self, *args):
        if not args:
            return guard_views.NamespaceView(sys._getframe(1).f_locals)
        if len(args) > 1:
            raise TypeError(f"vars expected at most 1 argument, got {len(args)}")
        return self.dict_of(args[0], via_vars=True)

    def builtins_dict(self) -> dict:
        safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS if hasattr(builtins, name)}
        safe.update(
            (name, value)
            for name, value in vars(builtins).items()
            if isinstance(value, type) and issubclass(value, BaseException)
        )
        globals_, locals_ = guard_views.scope_functions()
        safe.update(
            __build_class__=_build_class,
            __import__=self.import_,
            getattr=self.getattr,
            setattr=self.setattr,
            delattr=self.delattr,
            vars=self.vars,
            globals=globals_,
            locals=locals_,
        )
        return safe

    def namespace(self) -> dict:
        return {
            "__builtins__": self.builtins_dict(),
            "__name__": "__main__",
            "_getattr_": self.getattr,
            "_getitem_": operator.getitem,
            "_write_": self.write,
            "_getiter_": _unguarded,
            "_iter_unpack_sequence_": _unguarded,
            "_unpack_sequence_": _unguarded,
            "_inplacevar_": _inplacevar,
        }


@functools.lru_cache(maxsize=None)
def _policy(denied: tuple) -> _Policy:
    return _Policy(dict(denied))


# --------------------------------------------------------------------------
# Compile time
# --------------------------------------------------------------------------

_FRIENDLY_NODE_NAMES = {
    "TryStar": "'except*' is", "Match": "'match' statements are", "AsyncFunctionDef": "async code is",
    "AsyncFor": "async code is", "AsyncWith": "async code is", "Await": "async code is",
}


class _GuardTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer, relaxed for ordinary Python.

    Relaxed: names starting with underscores (but the guard's hooks and
    ``__builtins__``), dunder attributes (but REFUSED_DUNDERS and frame
    internals), augmented assignment of attributes and subscripts, annotated
    assignment, nonlocal, special methods and ``metaclass=`` in classes,
    star imports, plain ``print`` (no PrintCollector) and plain star-arg
    calls (no _apply_).  Kept: match, except* and async (refused).  Added:
    the import policy, refusal of eval & co., and a check of string
    annotations.
    """

    def __init__(self, policy: _Policy) -> None:
        super().__init__()
        self.policy = policy
        self.refusals: list[tuple[int | None, str]] = []

    def error(self, node, info):
        self.refusals.append((getattr(node, "lineno", None), info))
        self.errors.append(info)

    def not_allowed(self, node):
        kind = type(node).__name__
        self.error(node, f"{_FRIENDLY_NODE_NAMES.get(kind, kind + ' statements are')} not allowed in this sandbox")

    def gen_tmp_name(self):
        # Model code may now use names like _tmp0; ours end in '_' and
        # check_name reserves that shape.
        self._tmp_idx += 1
        return f"_guard_tmp{self._tmp_idx}_"

    def check_name(self, node, name, allow_magic_methods=False):
        if name is None:
            return
        if name in REFUSED_PLAIN_NAMES:
            self.error(node, f"name '{name}' is not allowed in this sandbox; {REFUSED_PLAIN_NAMES[name]}")
        elif len(name) > 1 and name[0] == "_" and name[-1] == "_" and name[:2] != "__":
            # _getattr_, _write_, ... : rebinding a hook would switch the guard off
            self.error(node, f"'{name}' is reserved by the sandbox")

    def visit_Name(self, node):
        # No print transform: print stays the builtin (see SAFE_BUILTINS).
        if isinstance(node.ctx, ast.Load) and node.id in REFUSED_NAMES:
            self.error(node, f"'{node.id}' is not allowed in this sandbox; {REFUSED_NAMES[node.id]}")
            return node
        self.check_name(node, node.id)
        return node

    def visit_Attribute(self, node):
        node = self.node_contents_visit(node)  # inner attributes are reported first
        if isinstance(node.ctx, ast.Load):
            refusal = _attribute_refusal(node.attr)
            if refusal:
                self.error(node, refusal)
            new_node = ast.Call(
                func=ast.Name("_getattr_", ast.Load()),
                args=[node.value, ast.Constant(node.attr)],
                keywords=[],
            )
            copy_locations(new_node, node)
            return new_node
        refusal = _write_refusal(node.attr)
        if refusal:
            self.error(node, refusal)
        new_value = ast.Call(func=ast.Name("_write_", ast.Load()), args=[node.value], keywords=[])
        copy_locations(new_value, node.value)
        node.value = new_value
        return node

    def visit_Call(self, node):
        # Plain calls, star-args included (no _apply_): the arguments need no
        # guard here, and eval/exec are refused as names in visit_Name.
        return self.node_contents_visit(node)

    def visit_AugAssign(self, node):
        if isinstance(node.target, ast.Name):
            return super().visit_AugAssign(node)  # a = _inplacevar_('+=', a, b)
        # obj.x += 1 / a[i] += 1: the target becomes _write_(obj).x / _write_(a)[i]
        # (visit_Attribute / visit_Subscript on a Store target) and Python's own
        # in-place operation runs, so numpy views are updated in place.
        return self.node_contents_visit(node)

    def check_annotation(self, node, annotation):
        for sub in ast.walk(annotation) if annotation is not None else ():
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and not _plain_annotation(sub.value):
                self.error(node, f"string annotation {sub.value!r} is not allowed in this sandbox; use a plain or dotted name")

    def visit_AnnAssign(self, node):
        # `x: int = 0` (dataclass fields): targets and annotations are visited
        # like any other expression.
        self.check_annotation(node, node.annotation)
        return self.node_contents_visit(node)

    def visit_arg(self, node):
        self.check_annotation(node, node.annotation)
        return self.node_contents_visit(node)

    def visit_FunctionDef(self, node):
        self.check_annotation(node, node.returns)
        return super().visit_FunctionDef(node)

    def visit_Nonlocal(self, node):
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_ClassDef(self, node):
        # Unlike RestrictedPython, no metaclass=__metaclass__ is injected:
        # _build_class records model classes instead (metaclass= included).
        self.check_name(node, node.name)
        return self.node_contents_visit(node)

    def check_import_names(self, node):
        policy = self.policy
        if isinstance(node, ast.ImportFrom):
            if node.level:
                self.error(node, "relative imports are not allowed in this sandbox; import by the full name")
            for alias in node.names:
                if node.level:
                    break
                if alias.name == "*":
                    message = policy.import_refusal(node.module)
                else:
                    message = policy.from_import_refusal(node.module, alias.name)
                if message:
                    self.error(node, message)
        else:
            for alias in node.names:
                message = policy.import_refusal(alias.name)
                if message:
                    self.error(node, message)
        for alias in node.names:
            if alias.name != "*":
                self.check_name(node, alias.asname or alias.name.split(".")[0])
        return self.node_contents_visit(node)


# --------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------


def _key(denied_modules) -> tuple:
    return tuple(sorted(dict(denied_modules).items()))


def compile_guarded(
    source: str,
    filename: str = "<code>",
    *,
    denied_modules: dict[str, str] = DEFAULT_DENIED_MODULES,
) -> types.CodeType:
    """Compile model code under the guard. Raises GuardError for policy refusals,
    SyntaxError (the normal Python one, with lineno/offset) for plain syntax errors.

    Pass the same ``denied_modules`` (name -> why) as to guard_namespace if you change it."""
    tree = ast.parse(source, filename, "exec")
    transformer = _GuardTransformer(_policy(_key(denied_modules)))
    tree = transformer.visit(tree)
    if transformer.refusals:
        lineno, message = transformer.refusals[0]
        raise GuardError(message, lineno)
    # dont_inherit: this file's compiler flags must not leak into model code.
    return compile(tree, filename, "exec", dont_inherit=True)


def guard_namespace(denied_modules: dict[str, str] = DEFAULT_DENIED_MODULES) -> dict:
    """Names that must be present in the globals dict the compiled code runs in."""
    return _policy(_key(denied_modules)).namespace()
