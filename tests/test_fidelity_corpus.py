"""Ordinary model programs run the same with the guard on as with it off, on both sandboxes.

Each program of tests/fidelity_corpus.py runs in a guarded and an unguarded
session of the same sandbox kind: outcome, output and the images that come
back (count and sizes) must be identical, and the program must succeed
unless it is one that fails on purpose.  One session per kind and mode
serves every program (the programs share no names and write distinct
files), as a model's session would serve its steps.
"""

from __future__ import annotations

import pytest

from conftest import png_size, require_docker, sample, sandbox_kinds
from fidelity_corpus import EXPECTED_FAILED, PROGRAMS, SALES_CSV


@pytest.fixture(scope="module", params=sandbox_kinds())
def sessions(request):
    """{True: guarded session, False: unguarded session} of one sandbox kind."""
    kind = request.param
    if kind == "docker":
        require_docker()
    from agentic_vision import open_session

    inputs = [
        ("photo.jpg", sample("rocket.jpg").read_bytes()),
        ("coins.png", sample("coins.png").read_bytes()),
        ("sales.csv", SALES_CSV.encode()),
    ]
    opened = {guard: open_session(kind, inputs, timeout=60, guard=guard) for guard in (True, False)}
    yield opened
    for session in opened.values():
        session.close()


def observed(result):
    return result.outcome, result.output, [png_size(image.data) for image in result.images]


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_guard_changes_nothing(sessions, name):
    code = PROGRAMS[name]
    unguarded = observed(sessions[False].run(code))
    guarded = observed(sessions[True].run(code))
    assert guarded == unguarded
    expected = "OUTCOME_FAILED" if name in EXPECTED_FAILED else "OUTCOME_OK"
    assert guarded[0] == expected, guarded[1]
