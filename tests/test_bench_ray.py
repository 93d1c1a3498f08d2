"""`bench --ray` on a real two-node Ray cluster started by the test, in a private network namespace.

tests/ray_scenarios.py does the runs (it must live inside the namespace with the
cluster and the scripted Gemini server); these tests judge what they left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import can_unshare_net, require, require_import
from test_bench_run import RIGHT, TASKS

HERE = Path(__file__).resolve().parent
PAIRS = {(t["id"], m) for t in TASKS for m in ("direct", "hosted", "local")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict]:
    require_import("ray", "Ray (pip install 'agentic-vision[ray]')")
    require(can_unshare_net(), "'unshare -n' (root or user namespaces)")
    out = tmp_path_factory.mktemp("ray")
    done = subprocess.run(["unshare", "-n", sys.executable, str(HERE / "ray_scenarios.py"), str(out)],
                          capture_output=True, text=True, timeout=900)
    summary_path = out / "summary.json"
    assert done.returncode == 0 and summary_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads(summary_path.read_text())


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines() if line.strip()]


def correctness(rows: list[dict]) -> dict:
    return {(r["task_id"], r["mode"]): r["correct"] for r in rows}


def test_same_accuracies_as_without_ray_and_episodes_on_both_nodes(runs):
    out, summary = runs
    assert summary["local"]["rc"] == 0, summary["local"]["stderr"]
    assert summary["ray"]["rc"] == 0, summary["ray"]["stderr"]
    local, on_ray = records(out / "local"), records(out / "ray")
    assert {(r["task_id"], r["mode"]) for r in on_ray} == PAIRS and len(on_ray) == len(PAIRS)
    assert correctness(on_ray) == correctness(local)
    assert correctness(on_ray) == {(t, m): t in RIGHT[m] for t, m in PAIRS}  # the hand-worked answers
    assert all(r["stop_reason"] == "answered" for r in on_ray)
    # Every record names where it ran: a node of the cluster, its host and sandbox kind.
    seen = {r["node"]["id"] for r in on_ray}
    assert seen == set(summary["nodes"]), "episodes should have run on both nodes"
    assert all(r["node"]["hostname"] for r in on_ray)
    assert {r["node"]["sandbox"] for r in on_ray if r["mode"] == "local"} == {"local"}
    assert all(r["node"]["sandbox"] is None for r in on_ray if r["mode"] != "local")
    assert all(r["node"]["id"] is None for r in local)
    # Traces made on the workers were written by the driver, beside the results.
    for r in on_ray:
        if r["mode"] == "local":
            assert r["trace"] and (out / "ray" / r["trace"]).read_text().startswith("<!DOCTYPE html>")
    report = (out / "ray" / "report.md").read_text()
    section = report.split("## Where episodes ran", 1)[1].split("##", 1)[0]
    assert all(node[:8] in section for node in summary["nodes"])
    assert f"All nodes: {len(PAIRS)} episodes" in section


def test_worker_killed_mid_episode_is_retried(runs):
    out, summary = runs
    kill = summary["kill"]
    assert kill["killed"], "no episode worker was found to kill"
    assert kill["rc"] == 0, kill["stderr"]
    rows = records(out / "kill")
    assert {(r["task_id"], r["mode"]) for r in rows} == PAIRS and len(rows) == len(PAIRS)
    assert all(r["stop_reason"] == "answered" for r in rows), [r["error"] for r in rows if r["error"]]
    assert correctness(rows) == correctness(records(out / "local"))
    # The held episode really ran twice: once in the killed worker, once in its retry.
    assert kill["coins_local_requests"] >= 2


def test_driver_killed_then_resumed_loses_and_repeats_nothing(runs):
    out, summary = runs
    driver = summary["driver"]
    assert driver["first_rc"] == -9
    assert 3 <= driver["before"] < len(PAIRS), "the kill should land part-way"
    assert driver["resume"]["rc"] == 0, driver["resume"]["stderr"]
    rows = records(out / "driver")
    keys = [(r["task_id"], r["mode"]) for r in rows]
    assert set(keys) == PAIRS and len(keys) == len(PAIRS)
    assert correctness(rows) == correctness(records(out / "local"))
    # One request per direct/hosted episode and two per local one, plus at most the two episodes that
    # were in flight when the driver died (they are run again, never recorded twice).
    needed = 4 + 4 + 2 * 4
    assert needed <= driver["requests_total"] <= needed + 2 * 2


def test_unreachable_cluster_is_one_line(tmp_path):
    env = {**os.environ, "GEMINI_API_KEY": "test"}
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m",
         "agentic_vision.bench", "--suite", "builtin", "--limit", "1", "--modes", "direct", "--quiet",
         "--out", str(tmp_path / "out"), "--ray", "127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, env=env, cwd=HERE.parent)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Ray cluster answers at 127.0.0.1:9" in lines[0], done.stderr


def test_ray_missing_is_one_line(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['agentic-vision'] + sys.argv[1:]; "
            "from agentic_vision.cli import main; main()")
    done = subprocess.run(
        [sys.executable, "-c", code, "bench", "--suite", "builtin", "--limit", "1", "--modes", "direct", "--quiet",
         "--out", str(tmp_path / "out"), "--ray", "auto"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "GEMINI_API_KEY": "test"}, cwd=HERE.parent)
    assert done.returncode == 2
    assert done.stderr.strip() == "agentic-vision: Ray is not installed: pip install 'agentic-vision[ray]'"
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_ray_resource_and_cpus_bound_the_episodes_at_once(runs):
    out, summary = runs
    run = summary["resources"]
    assert run["rc"] == 0, run["stderr"]
    assert "ray: 2 node(s), 2 episode(s) at once" in run["stderr"]  # one "slot" per node, not 2 CPUs / 0.5
    assert len(records(out / "resources")) == len(TASKS)


@pytest.mark.parametrize("scenario, words", [("no_resource", "--ray-resource gpu: no node of the Ray cluster has"),
                                             ("big_cpus", "--ray-cpus 4: no node of the Ray cluster has that many")])
def test_what_no_node_can_take_is_one_line_not_a_wait(runs, scenario, words):
    _, summary = runs
    run = summary[scenario]
    assert run["rc"] == 2, run
    # Ray's own core may log a line first (in the test's namespace it cannot find an outside address).
    ours = [line for line in run["stderr"].strip().splitlines() if not line.startswith("[")]
    assert len(ours) == 1 and ours[0].startswith("agentic-vision: ") and words in ours[0], run["stderr"]
    assert "Traceback" not in run["stderr"]


def test_an_episode_whose_retries_are_used_up_is_recorded_as_a_worker_error(runs):
    out, summary = runs
    run = summary["retries"]
    assert run["kills"] == [1, 1, 1] and run["attempts"] == 3, run  # the first attempt and both retries, each killed
    [row] = records(out / "retries")
    assert (row["task_id"], row["mode"], row["stop_reason"]) == ("coins", "local", "worker_error"), row
    assert row["error"] and not row["correct"]
    assert run["rc"] in (0, 1), run["stderr"]  # a bench with a failed episode still ends with its report


def test_ctrl_c_on_ray_cancels_the_running_episodes_and_keeps_the_finished(runs):
    out, summary = runs
    run = summary["interrupt"]
    assert run["rc"] == 130 and run["stderr"].strip().splitlines()[-1] == "agentic-vision: interrupted", run
    assert 3 <= run["recorded"] < len(PAIRS)
    rows = records(out / "interrupt")
    assert len({(r["task_id"], r["mode"]) for r in rows}) == len(rows)  # nothing recorded twice
    assert all(r["stop_reason"] == "answered" for r in rows)  # what was cancelled is not recorded as a result
    assert run["left_running"] == 0  # no episode runs on after the driver stopped
