"""Exceptions for infrastructure failures.

An error in model code is never an exception: it is an ``Execution`` whose
outcome is ``Outcome.FAILED`` ("OUTCOME_FAILED").  These are for what the user must fix.
"""


class AgenticVisionError(Exception):
    """Base class; ``str(exc)`` is one line that says what to do."""


class SandboxUnavailable(AgenticVisionError):
    """The sandbox cannot start (bubblewrap missing, Docker down, image not built...)."""


class InputError(AgenticVisionError):
    """A file or argument the user gave cannot be used."""


class ModelError(AgenticVisionError):
    """The model API refused the request (bad key, unknown model, ...)."""
