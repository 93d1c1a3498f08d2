"""Restricted stand-ins the guard hands to model code instead of routes out of it.

Model code gets the real module everywhere except at a few objects that
would hand it unguarded power: ``sys`` (``sys.modules``, ``sys._getframe``,
``sys.settrace``) becomes a view with what ordinary programs use;
``inspect.getmembers`` reads through the guard; unpickling resolves classes
through the guard's import policy; ``timeit`` compiles string statements
under the guard; ``globals()``/``locals()`` cannot rebind the guard's hooks;
jinja2 renders in its own sandbox.  Each stand-in keeps the real one's
behaviour for ordinary use.

Imported by guard.py only (inside the sandbox as a sibling module).
"""

import builtins
import io
import pickle
import sys
import timeit
import types


class GuardError(Exception):
    """str(exc) is the one-line message for the model.

    ``lineno`` is the line of the refused code for compile-time refusals (None
    at run time, where the traceback carries the line)."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


class GuardAttributeError(GuardError, AttributeError):
    """An attribute the sandbox hides: an AttributeError too, so getattr(x, n, default) and hasattr work."""


# Tracebacks name them without a module ("GuardError: ..."), as the model
# sees compile-time refusals: the runtime's module names are noise to it.
GuardError.__module__ = GuardAttributeError.__module__ = "builtins"


# What ordinary programs use of sys.  Absent on purpose: modules, meta_path,
# path_hooks, _getframe, settrace/setprofile, addaudithook, modules' loaders.
SYS_NAMES = frozenset({
    "argv", "version", "version_info", "hexversion", "api_version", "platform", "byteorder",
    "maxsize", "maxunicode", "float_info", "int_info", "hash_info", "float_repr_style",
    "implementation", "executable", "prefix", "base_prefix", "exec_prefix", "base_exec_prefix",
    "getsizeof", "getrecursionlimit", "setrecursionlimit", "getdefaultencoding",
    "getfilesystemencoding", "exit", "exc_info", "exception", "intern", "getrefcount", "flags",
    "copyright", "builtin_module_names", "stdlib_module_names", "dont_write_bytecode",
    "warnoptions", "get_int_max_str_digits", "set_int_max_str_digits", "thread_info",
    "getswitchinterval", "path",
})
SYS_HAS = "the sandbox's sys has the streams, argv, version, platform, exit, path as a copy and the size functions"
SYS_STREAMS = ("stdout", "stderr", "stdin", "__stdout__", "__stderr__", "__stdin__")


class SysView(types.ModuleType):
    """``import sys`` under the guard.  The streams are the live ones (the
    runtime redirects them; model code may replace them, as with
    contextlib.redirect_stdout); ``path`` is a copy, so appending to it
    cannot make a file the model wrote importable outside the guard."""

    def __init__(self) -> None:
        super().__init__("sys", sys.__doc__)
        for name in SYS_NAMES:
            if hasattr(sys, name):
                object.__setattr__(self, name, getattr(sys, name))
        object.__setattr__(self, "path", list(sys.path))

    def __getattr__(self, name):  # only for names not set above
        if name in SYS_STREAMS:
            return getattr(sys, name)
        if hasattr(sys, name):
            raise GuardAttributeError(f"'sys.{name}' is not available in this sandbox; {SYS_HAS}")
        raise AttributeError(f"module 'sys' has no attribute '{name}'")

    def __setattr__(self, name, value):
        if name in ("stdout", "stderr", "stdin"):
            setattr(sys, name, value)
        elif name == "argv":
            object.__setattr__(self, name, value)
        else:
            raise GuardAttributeError(f"setting 'sys.{name}' is not allowed in this sandbox (only stdout, stderr, stdin and argv)")

    def __dir__(self):
        return sorted(set(SYS_NAMES) | {n for n in SYS_STREAMS if not n.startswith("_")})


# type(sys) is module, as without the guard.
SysView.__name__ = SysView.__qualname__ = "module"
SysView.__module__ = "builtins"


# Names of the guard's hooks in the model's globals (see guard_namespace).
def _reserved(name) -> bool:
    return isinstance(name, str) and (name == "__builtins__" or (len(name) > 1 and name[0] == "_" and name[-1] == "_"
                                                                 and not name.startswith("__")))


class NamespaceView(dict):
    """What globals()/locals()/vars() return under the guard: the names of the
    scope, and writes that reach it, but never the guard's own hooks."""

    def __init__(self, target: dict) -> None:
        super().__init__((k, v) for k, v in target.items() if not _reserved(k))
        self._target = target

    def _check(self, key):
        if _reserved(key):
            raise GuardError(f"'{key}' is reserved by the sandbox")

    def __setitem__(self, key, value):
        self._check(key)
        self._target[key] = value
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self._check(key)
        self._target.pop(key, None)
        super().__delitem__(key)

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key, *default):
        self._check(key)
        self._target.pop(key, None)
        return super().pop(key, *default)


def scope_functions():
    """globals(), locals() and vars() of the calling model code."""

    def globals_():
        return NamespaceView(sys._getframe(1).f_globals)

    def locals_():
        frame = sys._getframe(1)
        return NamespaceView(frame.f_locals) if frame.f_locals is not frame.f_globals else NamespaceView(frame.f_globals)

    return globals_, locals_


def getmembers(getattr_):
    """inspect.getmembers that reads every member through the guard and leaves out what it refuses."""

    def getmembers_(obj, predicate=None):
        results = []
        for name in dir(obj):
            try:
                value = getattr_(obj, name)
            except (AttributeError, Exception):  # refused or absent: not a member the model can use
                continue
            if predicate is None or predicate(value):
                results.append((name, value))
        results.sort(key=lambda pair: pair[0])
        return results

    return getmembers_


def get_annotations(real):
    """inspect.get_annotations without eval_str (it evaluates strings with the object's module globals)."""

    def get_annotations_(obj, *, globals=None, locals=None, eval_str=False):
        if eval_str:
            raise GuardAttributeError("inspect.get_annotations(eval_str=True) is not allowed in this sandbox; "
                                  "read the annotations without eval_str")
        return real(obj)

    return get_annotations_


# The stand-ins below are not subclasses of the real classes: a subclass
# would hand model code the real class (``__mro__``, ``super()``), whose
# methods skip the guard.  The real object lives in a closure, which the
# guard does not let model code open (``__closure__``, ``__self__``).


def unpickling(find_class_check, check_value):
    """pickle.load/loads/Unpickler whose classes and functions pass the guard's checks.

    ``find_class_check(module, name)`` resolves a global under the import policy;
    whatever a model subclass's own find_class returns is checked again."""

    class Unpickler:
        def __init__(self, file, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=None):
            outer = self

            class Checked(pickle.Unpickler):
                def find_class(self, module, name):
                    return check_value(outer.find_class(module, name))

            real = Checked(file, fix_imports=fix_imports, encoding=encoding, errors=errors, buffers=buffers)
            self.load = lambda: real.load()

        def find_class(self, module, name):
            return find_class_check(module, name)

    def load(file, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=None):
        return Unpickler(file, fix_imports=fix_imports, encoding=encoding, errors=errors, buffers=buffers).load()

    def loads(data, /, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=None):
        if isinstance(data, str):
            raise TypeError("Can't load pickle from unicode string")
        return load(io.BytesIO(data), fix_imports=fix_imports, encoding=encoding, errors=errors, buffers=buffers)

    Unpickler.__module__ = load.__module__ = loads.__module__ = "pickle"
    return {"Unpickler": Unpickler, "load": load, "loads": loads}


def timing(compile_guarded, guard_names: dict):
    """timeit.Timer/timeit/repeat: string statements are compiled under the guard.

    A string statement runs in a fresh guarded namespace (timeit's own
    behaviour: it sees only ``globals=`` if given, copied here so the guard's
    hooks are added without touching the caller's dict)."""

    def as_callable(stmt, namespace):
        if callable(stmt):
            return stmt
        if not isinstance(stmt, str):
            raise ValueError("stmt is neither a string nor callable")
        code = compile_guarded(stmt, "<timeit>")
        return lambda: builtins.exec(code, namespace)

    class Timer:
        def __init__(self, stmt="pass", setup="pass", timer=timeit.default_timer, globals=None):
            namespace = dict(globals or {})
            namespace.update(guard_names)
            real = timeit.Timer(as_callable(stmt, namespace), as_callable(setup, namespace), timer)
            self.timeit = lambda number=timeit.default_number: real.timeit(number)
            self.repeat = lambda repeat=timeit.default_repeat, number=timeit.default_number: real.repeat(repeat, number)
            self.autorange = lambda callback=None: real.autorange(callback)
            self.print_exc = lambda file=None: real.print_exc(file)

    def timeit_(stmt="pass", setup="pass", timer=timeit.default_timer, number=timeit.default_number, globals=None):
        return Timer(stmt, setup, timer, globals).timeit(number)

    def repeat_(stmt="pass", setup="pass", timer=timeit.default_timer, repeat=timeit.default_repeat,
                number=timeit.default_number, globals=None):
        return Timer(stmt, setup, timer, globals).repeat(repeat, number)

    Timer.__module__ = timeit_.__module__ = repeat_.__module__ = "timeit"
    return {"Timer": Timer, "timeit": timeit_, "repeat": repeat_}


def jinja2_sandboxed(module):
    """jinja2's Environment and Template as its SandboxedEnvironment: a default
    environment evaluates ``{{ x.__class__.__mro__ }}`` with plain getattr.
    A first filter only: the real classes are these classes' bases, so jinja2
    stays among the libraries that can evaluate code on the guard's behalf."""
    from jinja2.sandbox import SandboxedEnvironment

    class Template(module.Template):
        environment_class = SandboxedEnvironment

    Template.__module__ = "jinja2"
    return {"Environment": SandboxedEnvironment, "Template": Template}
