"""A hostile runtime against the host's own checks, judged by host effects, on both sandboxes.

A hostile runtime (tests/hostile_runtime.py) is started in the real sandbox
in place of the broker and sends the host forged and malformed frames, so
the host's own checks are tested without the broker's (model code against
the real broker is test_attacks_broker.py).  Each attack must end with one
clear note and an OUTCOME_FAILED (or deadline) run, with the host's memory
growth and wall time bounded and the same session working afterwards.

Each attack is a ``play_*`` function, which attacks a session and returns
what the host saw as JSON facts (it runs where the session is), and a
``check_*`` function, which judges them (host_effects.py).  The host
process is root here; test_attacks_unprivileged.py plays the same attacks
(``ATTACKS``) in a host process of an unprivileged user and judges them
with the same checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentic_vision import open_session
from agentic_vision.images import to_model_image
from host_effects import TIMEOUT, HostEffects, check_effects, check_honest, execution, honest, one_note, serving, wait_until

HOSTILE = (Path(__file__).parent / "hostile_runtime.py").read_text()
HOSTILE_SESSION = {"timeout": TIMEOUT, "entry": ("-c", HOSTILE)}  # open_session's options


@pytest.fixture
def hostile(sandbox_kind):
    session = open_session(sandbox_kind, **HOSTILE_SESSION)
    yield session
    session.close()


REFUSED = [
    "sixty images",
    "huge blobs",
    "notes is a number",
    "images are numbers",
    "forty 8000x8000 pngs",
    "empty objects",
    "64 MiB of empty objects",
    "deep nesting",
    "wrong reply",
    "unknown op",
    "header is a list",
    "header is not utf-8",
    "4 GiB header length",
    "output is a number",
    "negative dropped",
    "extra field",
    "outcome forged",
    "dropped is NaN",
    "dropped is true",
    "blob longer than announced",
    "note too long",
]
BETWEEN_RUNS = ["16 MiB output frames between runs", "small output frames between runs", "two results"]


def play_refused(session, attack: str) -> dict:
    before = serving(session)
    with HostEffects() as effects:
        result = session.run(attack)
    after = honest(session)
    return {"result": execution(result), "effects": effects.facts, "after": after,
            "fresh": serving(session) not in (None, before)}


def check_refused(facts: dict) -> None:
    result = facts["result"]
    assert result["outcome"] == "OUTCOME_FAILED"
    assert result["images"] == 0
    one_note(result["output"])
    assert "Traceback" not in result["output"]
    check_effects(facts["effects"])
    check_honest(facts["after"])
    assert facts["fresh"]  # a fresh sandbox for the next run


@pytest.mark.parametrize("attack", REFUSED)
def test_a_forged_or_malformed_reply_is_refused_before_it_is_kept(hostile, attack):
    check_refused(play_refused(hostile, attack))


def play_between_runs(session, attack: str) -> dict:
    with HostEffects() as effects:
        first = session.run(attack)
        worker = session._worker
        # The flood runs while no run is active; it is seen (and the sandbox
        # killed) as soon as its first frame arrives.
        ended = wait_until(lambda: not worker.alive, timeout=20)
        after = session.run("print(1)")
    return {"first": execution(first), "ended": ended, "after": execution(after), "effects": effects.facts,
            "then": honest(session)}


def check_between_runs(facts: dict) -> None:
    assert facts["first"]["outcome"] == "OUTCOME_OK"
    assert facts["ended"]
    check_honest(facts["after"])
    one_note(facts["after"]["output"], "Before this run the sandbox sent an invalid message")
    check_effects(facts["effects"], seconds=30)
    check_honest(facts["then"])


@pytest.mark.parametrize("attack", BETWEEN_RUNS)
def test_frames_outside_a_run_kill_the_sandbox_and_the_next_run_says_so(hostile, attack):
    check_between_runs(play_between_runs(hostile, attack))


def play_output_flood(session) -> dict:
    before = serving(session)
    with HostEffects() as effects:
        result = session.run("output flood in a run")  # 400 frames of 64 Ki characters
    return {"result": execution(result), "effects": effects.facts, "same": serving(session) == before}


def check_output_flood(facts: dict) -> None:
    result = facts["result"]
    assert result["outcome"] == "OUTCOME_OK"
    assert result["output"].count("z") == 64 * 1024
    assert "more characters were not kept" in result["output"]
    check_effects(facts["effects"])
    assert facts["same"]


def test_output_flooded_within_a_run_is_capped_as_it_arrives(hostile):
    check_output_flood(play_output_flood(hostile))


def play_huge_images(session) -> dict:
    with HostEffects() as effects:
        result = session.run("ten 8000x8000 pngs")
        shown = [to_model_image(image, 1536) for image in result.images]
    return {"result": execution(result), "shown": len(shown), "effects": effects.facts}


def check_huge_images(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_OK"
    assert facts["shown"] == 2  # 2 x 64 megapixels is the budget of one run
    assert facts["result"]["output"].count("megapixels in all") == 8
    check_effects(facts["effects"])


def test_ten_huge_images_cost_the_host_a_bounded_decode(hostile):
    check_huge_images(play_huge_images(hostile))


def play_stuck_add_inputs(session) -> dict:
    session.run("stop reading")
    before = serving(session)
    with HostEffects() as effects:
        added = session.add_inputs([("big.bin", os.urandom(4 * 2**20))])
    fresh = serving(session) not in (None, before)  # at once: the fresh sandbox has the new file too
    return {"added": [f.name for f in added], "effects": effects.facts, "after": execution(session.run("print(1)")),
            "fresh": fresh}


def check_stuck_add_inputs(facts: dict) -> None:
    assert facts["added"] == ["big.bin"]
    check_effects(facts["effects"])
    one_note(facts["after"]["output"], "While files were added the sandbox did not take them in time")
    assert facts["fresh"]


def test_a_sandbox_that_stops_reading_cannot_hang_add_inputs(hostile):
    check_stuck_add_inputs(play_stuck_add_inputs(hostile))


def play_stuck_long_code(session) -> dict:
    session.run("stop reading")
    with HostEffects() as effects:
        result = session.run("#" * (8 * 2**20))
    return {"result": execution(result), "effects": effects.facts, "after": honest(session)}


def check_stuck_long_code(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_DEADLINE_EXCEEDED"
    one_note(facts["result"]["output"], "exceeded the time limit")
    check_effects(facts["effects"])
    check_honest(facts["after"])


def test_a_sandbox_that_stops_reading_cannot_hang_a_run_with_long_code(hostile):
    check_stuck_long_code(play_stuck_long_code(hostile))


def play_half_a_frame(session) -> dict:
    with HostEffects() as effects:
        result = session.run("half a frame")
    return {"result": execution(result), "effects": effects.facts, "after": honest(session)}


def check_half_a_frame(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_DEADLINE_EXCEEDED"
    check_effects(facts["effects"])
    check_honest(facts["after"])


def test_half_a_frame_ends_at_the_timeout(hostile):
    check_half_a_frame(play_half_a_frame(hostile))


def play_forged_death(session) -> dict:
    return {"result": execution(session.run("forged died")), "after": honest(session)}


def check_forged_death(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_FAILED"
    one_note(facts["result"]["output"], "The sandbox process died (nothing to see)")
    check_honest(facts["after"])


def test_a_forged_death_only_restarts_the_sandbox(hostile):
    check_forged_death(play_forged_death(hostile))


def play_lying_image(session) -> dict:
    before = serving(session)
    result = session.run("mime type lies")
    return {"result": execution(result), "same": serving(session) == before}


def check_lying_image(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_OK" and facts["result"]["images"] == 0
    one_note(facts["result"]["output"], "an image was dropped")
    assert facts["same"]


def test_an_image_whose_bytes_lie_about_its_type_is_dropped(hostile):
    check_lying_image(play_lying_image(hostile))


# id -> (session options, play, check, args): what test_attacks_unprivileged.py plays.
ATTACKS = {
    **{f"refused: {a}": (HOSTILE_SESSION, play_refused, check_refused, (a,)) for a in REFUSED},
    **{f"between runs: {a}": (HOSTILE_SESSION, play_between_runs, check_between_runs, (a,)) for a in BETWEEN_RUNS},
    "output flood in a run": (HOSTILE_SESSION, play_output_flood, check_output_flood, ()),
    "ten huge images": (HOSTILE_SESSION, play_huge_images, check_huge_images, ()),
    "stops reading: add_inputs": (HOSTILE_SESSION, play_stuck_add_inputs, check_stuck_add_inputs, ()),
    "stops reading: long code": (HOSTILE_SESSION, play_stuck_long_code, check_stuck_long_code, ()),
    "half a frame": (HOSTILE_SESSION, play_half_a_frame, check_half_a_frame, ()),
    "forged death": (HOSTILE_SESSION, play_forged_death, check_forged_death, ()),
    "lying image": (HOSTILE_SESSION, play_lying_image, check_lying_image, ()),
}
