"""Puts the test suite's network guard into every Python child a test starts (this
folder is first on PYTHONPATH while the tests run; see agentic_vision_netguard.py),
then runs whichever sitecustomize this one shadows."""

import importlib
import os
import sys

if not getattr(sys, "_agentic_vision_netguard_site", False):
    sys._agentic_vision_netguard_site = True
    if os.environ.get("AGENTIC_VISION_NETGUARD_LOG"):
        import agentic_vision_netguard

        agentic_vision_netguard.install()
    _here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    _path = sys.path[:]
    _self = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _here]
        try:
            importlib.import_module("sitecustomize")
        except ImportError:
            if _self is not None:
                sys.modules["sitecustomize"] = _self
    finally:
        sys.path[:] = _path
