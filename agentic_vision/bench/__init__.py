"""The benchmark harness: the same tasks in several modes (direct, hosted, local,
local-blind), every result kept in ``results.jsonl``, a report with the numbers
that say whether code execution pays off.  See ``README.md`` beside this file.

Modules: ``tasks`` (the task format and the V* / HR-Bench loaders), ``matching``
(grading free text), ``builtin`` + ``generate`` + ``samples`` (the offline suite), ``suite``
(``--suite`` -> tasks), ``modes`` (one task in one mode), ``runner`` (the thread
pool and the records), ``results`` (the append-only results file), ``stats``,
``metrics``, ``prices``, ``report``, ``cli`` (``bench_command``), ``offline``
(a scripted Gemini that plays any suite).
"""

from .matching import is_correct
from .suite import Suite, load_suite
from .tasks import Task

__all__ = ["Suite", "Task", "is_correct", "load_suite"]
