"""Routes out of the guard, tried from model code in a guarded session, on both sandboxes.

Each attack, if it got through, would run a program (``touch pwned-NAME``)
or switch the guard off for later runs.  Judged by those effects: after
every attack no pwned file exists in the working directory and the next
run is still guarded (``import ctypes`` refused); the attack itself ends
with the guard's one-line refusal.  The OS boundary is tested with the
guard off elsewhere (test_containment.py, test_attacks_*.py).
"""

from __future__ import annotations

import textwrap

import pytest

from conftest import require_docker, sandbox_kinds

# name -> code; each would create pwned-NAME (or disable the guard) if it worked.
ATTACKS = {
    "subclasses_walk": """
        for cls in ().__class__.__mro__[1].__subclasses__():
            if cls.__name__ == "_wrap_close":
                cls.__init__.__globals__["system"]("touch pwned-subclasses_walk")
    """,
    "subclasses_via_type_dict": """
        walk = type.__dict__["__subclasses__"]
        for cls in walk(object):
            if cls.__name__ == "_wrap_close":
                cls.__init__.__globals__["system"]("touch pwned-subclasses_via_type_dict")
    """,
    "sys_modules": """
        import sys
        sys.modules["os"].system("touch pwned-sys_modules")
    """,
    "sys_modules_via_os": """
        import os
        os.sys.modules["subprocess"].run(["touch", "pwned-sys_modules_via_os"])
    """,
    "sys_getframe": """
        import sys
        frame = sys._getframe(0)
        frame.f_back.f_globals["__builtins__"]["exec"]("import os; os.system('touch pwned-sys_getframe')")
    """,
    "inspect_currentframe": """
        import inspect
        inspect.currentframe().f_back.f_globals["os"].system("touch pwned-inspect_currentframe")
    """,
    "inspect_stack_locals": """
        import inspect
        for info in inspect.stack():
            interp = info.frame.f_locals.get("self")
            if interp is not None and hasattr(interp, "guard"):
                interp.guard = None
    """,
    "traceback_frame": """
        try:
            1 / 0
        except ZeroDivisionError as exc:
            exc.__traceback__.tb_frame.f_back.f_globals["os"].system("touch pwned-traceback_frame")
    """,
    "traceback_walk_tb": """
        import traceback, inspect
        try:
            1 / 0
        except ZeroDivisionError as exc:
            for frame, _ in traceback.walk_tb(exc.__traceback__):
                inspect.getargvalues(frame)
    """,
    "generator_frame": """
        def gen():
            yield 1
        g = gen()
        g.gi_frame.f_back.f_globals["os"].system("touch pwned-generator_frame")
    """,
    "signal_handler_frame": """
        import signal, inspect
        def handler(signum, frame):
            inspect.getargvalues(frame.f_back).locals["self"].guard = None
        signal.signal(signal.SIGUSR1, handler)
        signal.raise_signal(signal.SIGUSR1)
    """,
    "gc_referrers": """
        import gc
        for obj in gc.get_objects():
            if type(obj).__name__ == "Interpreter":
                obj.guard = None
    """,
    "gc_referrers_of_namespace": """
        import gc
        for ref in gc.get_referrers(globals):
            pass
    """,
    "function_globals": """
        import os.path
        os.path.join.__globals__["os"].system("touch pwned-function_globals")
    """,
    "function_builtins": """
        import json
        json.dumps.__builtins__["exec"]("import os; os.system('touch pwned-function_builtins')")
    """,
    "closure_cells": """
        import functools
        @functools.lru_cache
        def f(): pass
        f.cache_info.__closure__[0].cell_contents
    """,
    "guard_self": """
        policy = getattr.__self__
        policy._module_cache["ctypes"] = None
    """,
    "bound_method_reduce": """
        real_getattr = print.__reduce_ex__(2)
    """,
    "getattribute": """
        import os.path
        g = object.__getattribute__(os.path.join, "__globals__")
        g["os"].system("touch pwned-getattribute")
    """,
    "str_format_globals": """
        import os.path
        print("{0.__globals__[os]}".format(os.path.join))
    """,
    "string_formatter_get_field": """
        import string, os.path
        g, _ = string.Formatter().get_field("0.__globals__", (os.path.join,), {})
        g["os"].system("touch pwned-string_formatter_get_field")
    """,
    "attrgetter": """
        import operator, os.path
        operator.attrgetter("__globals__")(os.path.join)["os"].system("touch pwned-attrgetter")
    """,
    "six_function_globals": """
        import six, os.path
        six.get_function_globals(os.path.join)["os"].system("touch pwned-six_function_globals")
    """,
    "inspect_getmembers_globals": """
        import inspect, os.path
        members = dict(inspect.getmembers(os.path.join))
        members["__globals__"]["os"].system("touch pwned-inspect_getmembers_globals")
    """,
    "inspect_getclosurevars": """
        import inspect, os.path
        inspect.getclosurevars(os.path.join).globals["os"].system("touch pwned-inspect_getclosurevars")
    """,
    "inspect_annotations_eval": """
        import inspect, dataclasses
        C = dataclasses.make_dataclass("C", [("a", "__import__('os').system('touch pwned-inspect_annotations_eval')")])
        inspect.get_annotations(C, eval_str=True)
    """,
    "pickle_reduce": """
        import pickle
        pickle.loads(b"cos\\nsystem\\n(S'touch pwned-pickle_reduce'\\ntR.")
    """,
    "pickle_real_unpickler": """
        import pickle, io
        for base in pickle.Unpickler.__mro__ + tuple(pickle.Unpickler.mro()):
            if base not in (object, pickle.Unpickler):
                base(io.BytesIO(b"cos\\nsystem\\n(S'touch pwned-pickle_real_unpickler'\\ntR.")).load()
        raise SystemExit("no real class in reach")
    """,
    "timeit_real_timer": """
        import timeit
        for base in timeit.Timer.__mro__:
            if base not in (object, timeit.Timer):
                base("__import__('os').system('touch pwned-timeit_real_timer')").timeit(1)
        raise SystemExit("no real class in reach")
    """,
    "singledispatch_annotation": """
        import functools
        def g(a: int): pass
        g.__annotations__["a"] = "__import__('os').system('touch pwned-singledispatch_annotation')"
        @functools.singledispatch
        def f(a): pass
        f.register(g)
    """,
    "timeit_string": """
        import timeit
        timeit.timeit("__import__('os').system('touch pwned-timeit_string')", number=1)
    """,
    "jinja2_template": """
        from jinja2 import Template
        Template("{{ ''.__class__.__mro__[1].__subclasses__() }}").render()
    """,
    "jinja2_environment": """
        import jinja2, os.path
        env = jinja2.Environment()
        env.from_string("{{ f.__globals__['os'].system('touch pwned-jinja2_environment') }}").render(f=os.path.join)
    """,
    "globals_rebind_hook": """
        globals()["_getattr_"] = lambda obj, name: None
    """,
    "vars_module": """
        import random
        vars(random)["_os"].system("touch pwned-vars_module")
    """,
    "private_module_attribute": """
        import os
        os._execvpe("touch", ["touch", "pwned-private_module_attribute"], {})
    """,
    "logging_config": """
        import logging.config
        logging.config.dictConfig({"version": 1, "handlers": {"h": {"()": "os.system", "command": "touch pwned-logging_config"}}})
    """,
    "importlib": """
        import importlib
        importlib.import_module("os").system("touch pwned-importlib")
    """,
    "builtins_module": """
        import builtins
        builtins.exec("import os; os.system('touch pwned-builtins_module')")
    """,
    "ctypes": """
        import ctypes
        ctypes.CDLL(None).system(b"touch pwned-ctypes")
    """,
    "subprocess": """
        import subprocess
        subprocess.run(["touch", "pwned-subprocess"])
    """,
    "code_object": """
        import types
        types.CodeType
    """,
    "forward_ref": """
        import typing
        ref = typing.ForwardRef("__import__('os').system('touch pwned-forward_ref')")
        ref._evaluate(globals(), None, frozenset())
    """,
    "module_loader": """
        import json
        json.__loader__.get_code("json")
    """,
    "runtime_module": """
        import inspect
        inspect.getmodule(inspect.getmodule)
        import interpreter
    """,
}


# Refused by a stand-in rather than by the guard itself: the guarded
# inspect.getmembers leaves out what the guard refuses; jinja2 renders in its sandbox.
REFUSED_OTHERWISE = {
    "singledispatch_annotation": "TypeError: 'mappingproxy' object does not support item assignment",
    "pickle_real_unpickler": "SystemExit: no real class in reach",
    "timeit_real_timer": "SystemExit: no real class in reach",
    "inspect_getmembers_globals": "KeyError: '__globals__'",
    "jinja2_template": "SecurityError: access to attribute '__class__' of 'str' object is unsafe",
    "jinja2_environment": "SecurityError: access to attribute '__globals__' of 'function' object is unsafe",
}


@pytest.fixture(scope="module", params=sandbox_kinds())
def guarded(request):
    kind = request.param
    if kind == "docker":
        require_docker()
    from agentic_vision import open_session

    session = open_session(kind, timeout=30, guard=True)
    yield session
    session.close()


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_refused_and_changes_nothing(guarded, name):
    result = guarded.run(textwrap.dedent(ATTACKS[name]))
    assert result.outcome == "OUTCOME_FAILED", result.output
    last = result.output.strip().splitlines()[-1]
    if name in REFUSED_OTHERWISE:
        assert REFUSED_OTHERWISE[name] in last, result.output
    else:
        assert last.startswith(("GuardError: ", "GuardAttributeError: ")), result.output
        assert "in this sandbox" in last or "is reserved by the sandbox" in last, last
    # The effects it was after: a program run, or the guard switched off.
    check = guarded.run("import os\nprint(sorted(n for n in os.listdir('.') if n.startswith('pwned')))")
    assert check.output == "[]\n", check.output
    still_guarded = guarded.run("import ctypes")
    assert still_guarded.outcome == "OUTCOME_FAILED"
    assert "import of 'ctypes' is not allowed in this sandbox" in still_guarded.output


def test_the_attacks_would_work_without_the_guard(open_sandbox):
    """The attacks are real: unguarded, a sample of them has its effect."""
    session = open_sandbox(guard=False, timeout=30)
    for name in ("subclasses_walk", "sys_modules", "inspect_currentframe", "function_globals", "pickle_reduce",
                 "timeit_string", "six_function_globals", "string_formatter_get_field", "singledispatch_annotation"):
        session.run(textwrap.dedent(ATTACKS[name]))
    check = session.run("import os\nprint(sorted(n for n in os.listdir('.') if n.startswith('pwned')))")
    assert check.output.strip() == str(sorted(f"pwned-{n}" for n in (
        "subclasses_walk", "sys_modules", "inspect_currentframe", "function_globals", "pickle_reduce",
        "timeit_string", "six_function_globals", "string_formatter_get_field", "singledispatch_annotation")))
