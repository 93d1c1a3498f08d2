"""Puts the test suite's network guard into every Python child a test starts (this
folder is first on PYTHONPATH while the tests run; see agentic_vision_netguard.py),
then runs whichever sitecustomize this one shadows."""

import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("AGENTIC_VISION_NETGUARD_LOG"):
    import agentic_vision_netguard

    agentic_vision_netguard.install()

_path = sys.path[:]
try:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    del sys.modules["sitecustomize"]
    try:
        importlib.import_module("sitecustomize")
    except ImportError:
        pass
finally:
    sys.path[:] = _path
