"""A RestrictedPython first-pass guard for model code.

It runs inside the sandbox runtime, before model code executes, and refuses
the obvious routes out of "Python that manipulates images": imports outside the
allowed libraries, dunder and frame access, private attributes of modules and
a short list of dangerous functions.  It is defence in depth only: libraries
such as sympy (``sympify``), pandas (``eval``/``query``/``read_pickle``),
jinja2 (templates) or tensorflow can evaluate code on the guard's behalf, and
numpy can write raw memory.  The OS sandbox (bubblewrap / Docker) is the
boundary; this file must never be the reason something is considered safe.

Use::

    ns = {}
    ns.update(guard_namespace())        # once per session
    exec(compile_guarded(source), ns)   # per run; ns persists between runs

The file is self-contained (stdlib + RestrictedPython) because the runtime
imports it as a sibling module inside the sandbox.
"""

import ast
import builtins
import collections
import functools
import gc
import importlib
import operator
import os
import string
import subprocess
import sys
import types
import typing
import weakref
from _string import formatter_field_name_split

from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer, copy_locations

__all__ = ["DEFAULT_ALLOWED_MODULES", "GuardError", "compile_guarded", "guard_namespace"]


class GuardError(Exception):
    """str(exc) is the one-line message for the model.

    ``lineno`` is the line of the refused code for compile-time refusals (None
    at run time, where the traceback carries the line)."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


# --------------------------------------------------------------------------
# Policy tables
# --------------------------------------------------------------------------

# Import names of the 37 libraries of Gemini's hosted environment
# (sandbox/libraries.json), plus what ships inside them and is imported under
# its own name: ``attrs`` (next to ``attr``), ``mpl_toolkits`` (matplotlib's
# 3D axes) and ``keras`` (``tf.keras`` is the keras package since TF 2.16).
# Of ``google`` only ``google.protobuf`` is allowed.
GEMINI_MODULES = frozenset({
    "attr", "attrs", "chess", "contourpy", "fpdf", "geopandas", "imageio", "jinja2", "joblib",
    "jsonschema", "jsonschema_specifications", "lxml", "matplotlib", "mpl_toolkits", "mpmath",
    "numpy", "cv2", "openpyxl", "packaging", "pandas", "PIL", "google.protobuf", "pylatex",
    "pyparsing", "PyPDF2", "dateutil", "docx", "pptx", "reportlab", "sklearn", "scipy", "seaborn",
    "six", "striprtf", "sympy", "tabulate", "tensorflow", "keras", "toolz", "xlrd",
})

# Standard library that computes, parses or handles files.  Deliberately absent
# (so refused): sys, builtins, importlib, inspect, types, gc, ctypes, code,
# codeop, runpy, timeit/doctest/pdb (compile strings), pickle, marshal, shelve,
# copyreg, subprocess, socket, ssl, select, urllib, http, ftplib, smtplib,
# asyncio, threading, _thread, multiprocessing, concurrent (threads outlive a
# run and race the runtime), signal, pty, resource, platform (runs programs),
# logging ('{'-style formats reach attributes), sqlite3 (load_extension).
STDLIB_MODULES = frozenset({
    "__future__", "abc", "array", "ast", "base64", "binascii", "bisect", "bz2", "calendar",
    "cmath", "codecs", "collections", "colorsys", "contextlib", "copy", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "enum", "fnmatch", "fractions", "functools", "glob",
    "graphlib", "gzip", "hashlib", "heapq", "hmac", "html", "io", "itertools", "json", "lzma",
    "math", "numbers", "operator", "os", "pathlib", "posixpath", "pprint", "queue", "random", "re",
    "reprlib", "secrets", "shutil", "statistics", "string", "struct", "tarfile", "tempfile",
    "textwrap", "time", "traceback", "typing", "unicodedata", "uuid", "warnings", "xml",
    "zipfile", "zlib", "zoneinfo",
})

# Beyond the hosted list (sandbox/libraries.json, "hosted": false): the PDF renderer.
EXTRA_MODULES = frozenset({"pypdfium2"})

DEFAULT_ALLOWED_MODULES: frozenset[str] = GEMINI_MODULES | EXTRA_MODULES | STDLIB_MODULES

# Submodules of allowed packages that load native code or run programs.
DENIED_SUBMODULES = frozenset({
    "numpy.ctypeslib", "numpy.f2py", "numpy.distutils", "matplotlib.testing",
})

# os functions refused to model code (by object identity, so re-exports such
# as ``posix.system`` or ``shutil.os.system`` are refused too).  Everything
# else in os stays usable: listdir, scandir, walk, makedirs, remove, rename,
# stat, getcwd, path, ...
OS_DENIED = (
    # run programs, replace or fork the process
    "system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
    "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
    "spawnvpe", "posix_spawn", "posix_spawnp", "fork", "forkpty", "register_at_fork",
    # signals, process identity and sessions
    "kill", "killpg", "abort", "setuid", "seteuid", "setgid", "setegid", "setreuid",
    "setregid", "setresuid", "setresgid", "setgroups", "initgroups", "setsid", "setpgid",
    "setpgrp", "chroot",
    # the runtime's working directory (outputs are collected from it) and its
    # environment (model code has no need of it)
    "chdir", "fchdir", "putenv", "unsetenv", "environ", "environb", "getenv", "getenvb",
)


def _forbidden_values() -> dict[int, tuple[object, str]]:
    """id -> (object, label) of objects model code may not obtain, wherever from."""
    table: dict[int, tuple[object, str]] = {}

    def add(label: str, obj: object) -> None:
        if obj is not None:
            table.setdefault(id(obj), (obj, label))

    for name in ("eval", "exec", "compile", "breakpoint", "globals", "locals", "input", "__import__"):
        add(name, getattr(builtins, name, None))  # e.g. six.exec_ is builtins.exec
    for name in ("getattr", "setattr", "delattr", "vars"):
        add(f"builtins.{name}", getattr(builtins, name))  # the unguarded originals
    for name in OS_DENIED:
        add(f"os.{name}", getattr(os, name, None))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        add(f"subprocess.{name}", getattr(subprocess, name))
    for name in ("get_objects", "get_referrers", "get_referents"):
        add(f"gc.{name}", getattr(gc, name))  # reach any object, frames included
    add("sys.modules", sys.modules)
    add("sys._getframe", sys._getframe)
    add("importlib.import_module", importlib.import_module)
    add("typing.get_type_hints", typing.get_type_hints)  # eval()s string annotations
    add("string.Formatter", string.Formatter)  # unguarded "{0.__class__}" lookups
    return table


_FORBIDDEN = _forbidden_values()
_FORBIDDEN_LABELS = frozenset(label for _, label in _FORBIDDEN.values())

# Frame, traceback, generator and coroutine internals (RestrictedPython's list).
FRAME_ATTRIBUTES = INSPECT_ATTRIBUTES

# The only dunder attributes model code may read: strings, and ``__init__``
# for ``super().__init__(...)``.  Everything past them (``__globals__``,
# ``__self__``, ``__func__``) is still refused.
PUBLIC_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__", "__version__"})

# Special methods model classes may define (only inside a class body).  Left
# out on purpose: hooks that change attribute access or run implicitly at odd
# times (__getattr__, __getattribute__, __setattr__, __del__, __new__,
# __init_subclass__, __set_name__, descriptors, __reduce__ ...).
DEFINABLE_DUNDERS = frozenset({
    "__init__", "__post_init__", "__repr__", "__str__", "__format__", "__len__", "__iter__",
    "__next__", "__reversed__", "__contains__", "__getitem__", "__setitem__", "__delitem__",
    "__call__", "__enter__", "__exit__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
    "__ge__", "__hash__", "__bool__", "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__",
    "__isub__", "__mul__", "__rmul__", "__imul__", "__matmul__", "__truediv__", "__rtruediv__",
    "__floordiv__", "__mod__", "__pow__", "__neg__", "__pos__", "__abs__", "__and__", "__or__",
    "__xor__", "__invert__", "__float__", "__int__", "__index__", "__round__",
})

# Builtins that give new code or namespace access; refused as plain names.
# (input is merely absent from the builtins: a parameter may be called input.)
REFUSED_NAMES = frozenset({"eval", "exec", "compile", "breakpoint", "globals", "locals"})

SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "classmethod", "complex", "dict", "dir", "divmod", "enumerate", "filter", "float", "format",
    "frozenset", "hasattr", "hash", "hex", "id", "int", "isinstance", "issubclass", "iter",
    "len", "list", "map", "max", "memoryview", "min", "next", "object", "oct", "open", "ord",
    "pow", "print", "property", "range", "repr", "reversed", "round", "set", "slice", "sorted",
    "staticmethod", "str", "sum", "super", "tuple", "type", "zip", "Ellipsis", "NotImplemented",
)
# print is the real builtin: with file=None it writes to sys.stdout as it is
# at call time, which the runtime redirects.  hasattr and dir only return
# bools and strings.  open is unrestricted: paths are the OS sandbox's job.

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
    """The refusal for an attribute name on any object, or None."""
    if (name.startswith("__") and name not in PUBLIC_DUNDERS) or name in FRAME_ATTRIBUTES:
        return f"access to '{name}' is not allowed in this sandbox"
    return None


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


class _Policy:
    """The run-time checks for one set of allowed modules."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        self._module_cache: dict[str, bool] = {}
        self._formatter = _SafeFormatter(self.getattr)
        # Objects swapped for guarded equivalents when model code obtains them:
        # attrgetter/methodcaller would otherwise read any attribute in C.
        self._substitutes = {
            id(operator.attrgetter): (operator.attrgetter, self.attrgetter),
            id(operator.methodcaller): (operator.methodcaller, self.methodcaller),
        }

    # -- modules ------------------------------------------------------------

    def module_allowed(self, name: str) -> bool:
        ok = self._module_cache.get(name)
        if ok is None:
            parts = name.split(".")
            prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
            ok = bool(prefixes & self.allowed) and not prefixes & DENIED_SUBMODULES
            self._module_cache[name] = ok
        return ok

    def import_refusal(self, name: str) -> str | None:
        if name != "__future__" and any(part.startswith("_") for part in name.split(".")):
            return f"'{name}': private modules are not allowed in this sandbox"
        if not self.module_allowed(name):
            return f"import of '{name}' is not allowed in this sandbox"
        return None

    def from_import_refusal(self, module: str, item: str) -> str | None:
        label = f"{module}.{item}"
        refusal = self.import_refusal(module)
        if refusal and not self.module_allowed(label):  # 'from google import protobuf' is fine
            return refusal
        if item.startswith("_"):
            return f"'{label}': private module attributes are not allowed in this sandbox"
        if label in _FORBIDDEN_LABELS:
            return f"'{label}' is not allowed in this sandbox"
        if label in DENIED_SUBMODULES:
            return f"import of '{label}' is not allowed in this sandbox"
        return None

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
            raise GuardError("relative imports are not allowed in this sandbox")
        fromlist = tuple(fromlist or ())
        refusal = self.import_refusal(name)
        if refusal and not (fromlist and all(self.module_allowed(f"{name}.{i}") for i in fromlist)):
            raise GuardError(refusal)
        module = builtins.__import__(name, None, None, fromlist, 0)
        if not fromlist:
            return module
        # ``from m import x`` reads x with a plain getattr on what we return:
        # hand back a namespace of guarded lookups instead of the module.
        values = {}
        for item in fromlist:
            if item == "*":
                raise GuardError(f"'from {name} import *' is not allowed in this sandbox")
            try:
                values[item] = self.getattr(module, item)
            except AttributeError:
                raise ImportError(f"cannot import name '{item}' from '{name}'", name=name) from None
        return types.SimpleNamespace(**values)

    # -- attributes -----------------------------------------------------------

    def getattr(self, obj, name, *default):
        """_getattr_ (every ``obj.name`` in model code) and the getattr builtin."""
        if type(name) is not str:
            raise TypeError(f"attribute name must be string, not '{type(name).__name__}'")
        if name[:1] == "_" or name in FRAME_ATTRIBUTES:
            refusal = _attribute_refusal(name)
            if refusal:
                raise GuardError(refusal)
            if isinstance(obj, typing.ForwardRef):  # ._evaluate() is eval()
                raise GuardError("access to typing.ForwardRef internals is not allowed in this sandbox")
        if isinstance(obj, types.ModuleType):
            self._check_module_access(obj, name)
        elif name in _FORMATTER_METHODS:
            replacement = self._format_method(obj, name)
            if replacement is not None:
                return replacement
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        return self._check_value(value)

    def _check_module_access(self, module, name: str) -> None:
        modname = getattr(module, "__name__", None)
        if not isinstance(modname, str):
            raise GuardError("access to this module is not allowed in this sandbox")
        if not (self.module_allowed(modname) or self.module_allowed(f"{modname}.{name}")):
            raise GuardError(f"module '{modname}' is not allowed in this sandbox")
        if name.startswith("_") and name not in PUBLIC_DUNDERS:
            raise GuardError(f"'{modname}.{name}': private module attributes are not allowed in this sandbox")

    def _check_value(self, value):
        key = id(value)
        hit = _FORBIDDEN.get(key)
        if hit is not None and hit[0] is value:
            raise GuardError(f"'{hit[1]}' is not allowed in this sandbox")
        hit = self._substitutes.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        if isinstance(value, types.ModuleType):
            modname = getattr(value, "__name__", None)
            if not (isinstance(modname, str) and self.module_allowed(modname)):
                raise GuardError(f"module '{modname}' is not allowed in this sandbox")
        return value

    def _format_method(self, obj, name: str):
        """Guarded str.format/format_map; refuses string.Formatter methods."""
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
            raise GuardError("'string.Formatter' is not allowed in this sandbox")
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
        if isinstance(obj, types.ModuleType):
            raise GuardError(f"modifying module '{getattr(obj, '__name__', '?')}' is not allowed in this sandbox")
        if isinstance(obj, type) and obj not in _SANDBOX_CLASSES:
            raise GuardError(
                f"modifying class '{obj.__name__}' is not allowed in this sandbox "
                "(only classes defined in your code can be changed)"
            )
        return obj

    def setattr(self, obj, name, value):
        refusal = _attribute_refusal(name) if isinstance(name, str) else None
        if refusal:
            raise GuardError(refusal)
        setattr(self.write(obj), name, value)

    def delattr(self, obj, name):
        refusal = _attribute_refusal(name) if isinstance(name, str) else None
        if refusal:
            raise GuardError(refusal)
        delattr(self.write(obj), name)

    def vars(self, *args):
        # A module's or class's __dict__ holds what attribute access refuses
        # (random._os, type.__subclasses__ ...); instances are fine.
        if not args:
            raise GuardError("vars() without an argument is not allowed in this sandbox")
        if isinstance(args[0], (types.ModuleType, type)):
            raise GuardError("vars() of a module or class is not allowed in this sandbox")
        return vars(*args)

    def builtins_dict(self) -> dict:
        safe = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
        safe.update(
            (name, value)
            for name, value in vars(builtins).items()
            if isinstance(value, type) and issubclass(value, BaseException)
        )
        safe.update(
            __build_class__=_build_class,
            __import__=self.import_,
            getattr=self.getattr,
            setattr=self.setattr,
            delattr=self.delattr,
            vars=self.vars,
        )
        return safe


@functools.lru_cache(maxsize=None)
def _policy(allowed: frozenset[str]) -> _Policy:
    return _Policy(allowed)


# --------------------------------------------------------------------------
# Compile time
# --------------------------------------------------------------------------

_FRIENDLY_NODE_NAMES = {
    "TryStar": "'except*' is", "Match": "'match' statements are", "AsyncFunctionDef": "async code is",
    "AsyncFor": "async code is", "AsyncWith": "async code is", "Await": "async code is",
}


class _GuardTransformer(RestrictingNodeTransformer):
    """RestrictedPython's transformer, relaxed for ordinary scientific code.

    Relaxed: names starting with one underscore, augmented assignment of
    attributes and subscripts, annotated assignment, nonlocal, defining
    common special methods, plain ``print`` (no PrintCollector), plain
    star-arg calls (no _apply_) and reading ``__name__``.  Kept: every dunder
    name and attribute, frame internals, star imports, ``metaclass=``, match,
    except*, async.  Added: the import policy, refusal of eval & co., and a
    check of string annotations.
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
        if name.startswith("__"):
            if allow_magic_methods and name in DEFINABLE_DUNDERS and node.col_offset != 0:
                return  # a special method inside a class body
            self.error(node, f"name '{name}' is not allowed in this sandbox")
        elif len(name) > 1 and name.startswith("_") and name.endswith("_"):
            # _getattr_, _write_, ... : rebinding a hook would switch the guard off
            self.error(node, f"'{name}' is reserved by the sandbox")

    def visit_Name(self, node):
        # No print transform: print stays the builtin (see SAFE_BUILTINS).
        if isinstance(node.ctx, ast.Load):
            if node.id == "__name__":  # for `if __name__ == "__main__":`
                return node
            if node.id in REFUSED_NAMES:
                self.error(node, f"'{node.id}' is not allowed in this sandbox")
                return node
        self.check_name(node, node.id)
        return node

    def visit_Attribute(self, node):
        node = self.node_contents_visit(node)  # inner attributes are reported first
        refusal = _attribute_refusal(node.attr)
        if refusal:
            self.error(node, refusal)
        if isinstance(node.ctx, ast.Load):
            new_node = ast.Call(
                func=ast.Name("_getattr_", ast.Load()),
                args=[node.value, ast.Constant(node.attr)],
                keywords=[],
            )
            copy_locations(new_node, node)
            return new_node
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
        # _build_class records model classes instead.
        self.check_name(node, node.name)
        if any(keyword.arg == "metaclass" for keyword in node.keywords):
            self.error(node, "'metaclass=' is not allowed in this sandbox")
        return self.node_contents_visit(node)

    def check_import_names(self, node):
        policy = self.policy
        if isinstance(node, ast.ImportFrom):
            if node.level:
                self.error(node, "relative imports are not allowed in this sandbox")
            for alias in node.names:
                if node.level:
                    break
                if alias.name == "*":
                    message = f"'from {node.module} import *' is not allowed in this sandbox; import the names you need"
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


def compile_guarded(
    source: str,
    filename: str = "<code>",
    *,
    allowed_modules: frozenset[str] = DEFAULT_ALLOWED_MODULES,
) -> types.CodeType:
    """Compile model code under the guard. Raises GuardError for policy refusals,
    SyntaxError (the normal Python one, with lineno/offset) for plain syntax errors.

    Pass the same ``allowed_modules`` as to guard_namespace if you widen it."""
    tree = ast.parse(source, filename, "exec")
    transformer = _GuardTransformer(_policy(frozenset(allowed_modules)))
    tree = transformer.visit(tree)
    if transformer.refusals:
        lineno, message = transformer.refusals[0]
        raise GuardError(message, lineno)
    # dont_inherit: this file's compiler flags must not leak into model code.
    return compile(tree, filename, "exec", dont_inherit=True)


def guard_namespace(allowed_modules: frozenset[str] = DEFAULT_ALLOWED_MODULES) -> dict:
    """Names that must be present in the globals dict the compiled code runs in."""
    policy = _policy(frozenset(allowed_modules))
    return {
        "__builtins__": policy.builtins_dict(),
        "__name__": "__main__",
        "_getattr_": policy.getattr,
        "_getitem_": operator.getitem,
        "_write_": policy.write,
        "_getiter_": _unguarded,
        "_iter_unpack_sequence_": _unguarded,
        "_unpack_sequence_": _unguarded,
        "_inplacevar_": _inplacevar,
    }
