"""The benchmark without a model: a scripted Gemini that plays every task in every mode.

For CI and for looking at a report without an API key::

    python -m agentic_vision.bench.offline --out /tmp/bench-demo --limit 12
    # = agentic-vision bench --suite builtin --modes direct,hosted,local,local-blind
    #   against a ScriptedGemini on 127.0.0.1 (GOOGLE_GEMINI_BASE_URL), key "offline"

From Python::

    from agentic_vision.bench.offline import offline_server
    with offline_server(tasks) as server:   # a started ScriptedGemini
        ...  # point GeminiModel(base_url=server.url) or GOOGLE_GEMINI_BASE_URL at it

The router recognises the task by its prompt and image names in the first
user message, and the mode by the request: a ``codeExecution`` tool is
hosted, a function declaration is the local loop (blind when the function
response says its images were not shown), no tools is direct.  Each (task,
mode) is right or wrong by a fixed hash of the seed, task and mode, with
rates that look like the announced effect (direct weaker, most of all on the
generated high-resolution tasks; hosted and local alike; blind in between).
Local conversations run real code in the sandbox: a crop (and, now and then,
a failing first attempt that is then fixed).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import click
from PIL import Image

from ..cli.bench import bench_command
from ..testing.gemini_server import RecordedRequest, ScriptedGemini, reply
from .matching import LETTERS, expected_choice
from .suite import load_suite
from .tasks import Task
from ..values import BenchMode

RATES = {  # chance of a right answer: (hand-checked task, generated task)
    BenchMode.DIRECT: (0.80, 0.25),
    BenchMode.HOSTED: (0.85, 0.75),
    BenchMode.LOCAL: (0.85, 0.75),
    BenchMode.LOCAL_BLIND: (0.80, 0.45),
}
BLIND_MARK = "are not shown in this mode"


def _unit(*parts) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def right_answer(task: Task) -> str:
    if task.match == "choice":
        i = expected_choice(str(task.answer), task.options or [])
        return f"The answer is ({LETTERS[i]}) {task.options[i]}."
    if task.match == "number":
        return f"After checking the image, the answer is {task.answer}."
    return f"{task.answer}"


def wrong_answer(task: Task) -> str:
    if task.match == "choice":
        i = expected_choice(str(task.answer), task.options or [])
        j = (i + 1) % len(task.options)
        return f"The answer is ({LETTERS[j]}) {task.options[j]}."
    if task.match == "number":
        off = int(task.tolerance) + 1
        return f"After checking the image, the answer is {float(task.answer) + off:g}."
    return "I cannot make it out clearly."


def crop_code(task: Task) -> str:
    name = task.images[0].name
    return ("from PIL import Image\n"
            f"img = Image.open({name!r})\n"
            "w, h = img.size\n"
            "print(img.size)\n"
            "img.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4)).show()\n")


class OfflineRouter:
    """``router=`` for ScriptedGemini: answers each task in each mode."""

    def __init__(self, tasks: list[Task], seed: int = 0, delay: float = 0.0, rates: dict | None = None,
                 stumble_rate: float = 0.2) -> None:
        self.tasks = list(tasks)
        self.seed = seed
        self.delay = delay
        self.rates = rates or RATES
        self.stumble_rate = stumble_rate  # share of local conversations whose first code fails
        self._crops: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # -- what the request is --------------------------------------------------------------
    def task_for(self, request: RecordedRequest) -> Task | None:
        text = request.first_user_text()
        fits = [t for t in self.tasks if t.prompt() in text and all(p.name in text for p in t.images)]
        return max(fits, key=lambda t: len(t.prompt()), default=None)

    @staticmethod
    def mode_of(request: RecordedRequest) -> str:
        tools = (request.body or {}).get("tools") or []
        if any("codeExecution" in t for t in tools):
            return BenchMode.HOSTED
        if any(t.get("functionDeclarations") for t in tools):
            outputs = [str((fr.get("response") or {}).get("output", "")) for fr in request.function_responses()]
            return BenchMode.LOCAL_BLIND if any(BLIND_MARK in o for o in outputs) else BenchMode.LOCAL
        return BenchMode.DIRECT

    def is_right(self, task: Task, mode: str) -> bool:
        generated = bool(task.meta.get("generated"))
        rate = self.rates.get(mode, (0.5, 0.5))[1 if generated else 0]
        return _unit(self.seed, task.id, mode) < rate

    def crop_png(self, task: Task) -> bytes:
        with self._lock:
            if task.id not in self._crops:
                with Image.open(task.images[0]) as img:
                    img = img.convert("RGB")
                    w, h = img.size
                    crop = img.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4))
                    crop.thumbnail((384, 384))
                    buf = io.BytesIO()
                    crop.save(buf, format="PNG")
                self._crops[task.id] = buf.getvalue()
            return self._crops[task.id]

    # -- the reply -------------------------------------------------------------------------
    def __call__(self, request: RecordedRequest):
        if self.delay:
            time.sleep(self.delay)
        task = self.task_for(request)
        if task is None:
            return reply.error(500, "INTERNAL", "ScriptedGemini (offline bench): no task matches this request")
        mode = self.mode_of(request)
        answer = right_answer(task) if self.is_right(task, mode) else wrong_answer(task)
        if mode == BenchMode.DIRECT:
            return reply.text(answer, thought="Looking at the whole image at once.")
        if mode == BenchMode.HOSTED:
            w, h = image_size(task)
            return reply.hosted(crop_code(task), f"({w}, {h})\n", images=[self.crop_png(task)], text=answer,
                                thought="I will crop the centre of the image to look closer.")
        # The local loop: maybe a failing first attempt, then a crop, then the answer.
        # Keyed on the loop, not the mode: blindness shows only once a run made an image, and the
        # script's length must not change half-way through a conversation.
        stumble = _unit(self.seed, task.id, "loop", "stumble") < self.stumble_rate
        script = []
        if stumble:
            script.append(reply.call("run_python", {"code": "print(img.size)"},
                                     thought="Check the image size first."))
        script.append(reply.call("run_python", {"code": crop_code(task)},
                                 thought="I will crop the centre of the image to look closer."))
        script.append(reply.text(answer, thought="The crop shows what I need."))
        step = request.model_turns()
        if step >= len(script):
            return reply.error(500, "INTERNAL", "ScriptedGemini (offline bench): the script is exhausted")
        return script[step]


def image_size(task: Task) -> tuple[int, int]:
    with Image.open(task.images[0]) as img:
        return img.size


@contextmanager
def offline_server(tasks: list[Task], *, seed: int = 0, delay: float = 0.0, rates: dict | None = None,
                   stumble_rate: float = 0.2):
    """A started ScriptedGemini whose router plays ``tasks``; stopped on exit."""
    server = ScriptedGemini(router=OfflineRouter(tasks, seed=seed, delay=delay, rates=rates,
                                                 stumble_rate=stumble_rate))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def offline_environment(url: str) -> dict:
    """Environment variables that point the google-genai SDK at ``url`` with a dummy key."""
    return {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": "offline", "GOOGLE_API_KEY": "",
            "GOOGLE_GENAI_USE_VERTEXAI": ""}


def main(argv: list[str] | None = None) -> None:
    """``python -m agentic_vision.bench.offline --out DIR [bench options]``: the bench against the
    scripted server (default: --suite builtin, all four modes, --sandbox local)."""
    args = list(sys.argv[1:] if argv is None else argv)

    def value(flag: str, default):
        return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else default

    if "--out" not in args:
        raise SystemExit("usage: python -m agentic_vision.bench.offline --out DIR [agentic-vision bench options]")
    if "--suite" not in args:
        args += ["--suite", "builtin"]
    if "--modes" not in args:
        args += ["--modes", "direct,hosted,local,local-blind"]
    if "--sandbox" not in args:
        args += ["--sandbox", "local"]
    limit = value("--limit", None)
    seed = int(value("--seed", 0))
    suite = load_suite(value("--suite", "builtin"), Path(value("--out", ".")) / "cache", seed=seed,
                       limit=int(limit) if limit else None)
    with offline_server(suite.tasks, seed=seed) as server:
        os.environ.update(offline_environment(server.url))
        click.echo(f"offline: scripted Gemini at {server.url}", err=True)
        bench_command.main(args, prog_name="agentic-vision bench (offline)", standalone_mode=True)


if __name__ == "__main__":
    main()
