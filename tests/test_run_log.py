"""The run log: every ask kept in SQLite, listed, searched, shown and traced again."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import mounted_tmpfs, sample
from run_log_support import cli, cli_env, make_home, rows

CROP = "from PIL import Image\nImage.open('coins.png').crop((0, 0, 100, 80)).show()\nprint('cropped the corner')"


@pytest.fixture
def home(tmp_path):
    return make_home(tmp_path / "home")


def ask_coins(home, question, answer, *extra, code=CROP):
    script = [reply.call("run_python", {"code": code}), reply.text(answer)]
    with ScriptedGemini(script) as server:
        result = cli(home, "ask", str(sample("coins.png")), question, "--sandbox", "local", *extra, server=server)
    assert result.returncode == 0, result.stderr
    return result, server


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A home with three runs: a crop, a second question on the same image, one without an answer."""
    home = make_home(tmp_path_factory.mktemp("logged") / "home")
    first, _ = ask_coins(home, "How many coins are there?", "24 coins.")
    ask_coins(home, "What is the largest coin worth?", "Probably a penny.", code="print('the zebra of numismatics')")
    with ScriptedGemini([reply.text("")]) as server:  # no answer
        cli(home, "ask", str(sample("coins.png")), "Anything at all?", "--sandbox", "local", server=server)
    run_line = re.search(r"run ([0-9a-f]{8}) logged", first.stderr)
    assert run_line, first.stderr
    return home, run_line.group(1)


def test_asks_are_listed_newest_first_and_searched(logged):
    home, first = logged
    listing = cli(home, "logs")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.index("largest coin") < listing.stdout.index("How many coins")
    assert first in listing.stdout and "A: 24 coins." in listing.stdout
    # Full-text search covers questions, answers, code and output.
    found = json.loads(cli(home, "logs", "-q", "zebra numismatics", "--json").stdout)
    assert [r["question"] for r in found] == ["What is the largest coin worth?"]
    assert json.loads(cli(home, "logs", "-q", "penny", "--json").stdout)[0]["answer"] == "Probably a penny."
    assert [r["question"] for r in json.loads(cli(home, "logs", "-q", "cropped corner", "--json").stdout)] == [
        "How many coins are there?"]
    assert json.loads(cli(home, "logs", "-q", "nothing-like-this", "--json").stdout) == []
    assert len(json.loads(cli(home, "logs", "--json", "-n", "1").stdout)) == 1


def test_a_run_is_shown_whole_and_its_trace_rebuilt(logged, tmp_path):
    home, first = logged
    shown = cli(home, "logs", "show", first)
    assert shown.returncode == 0, shown.stderr
    assert "Image.open('coins.png')" in shown.stdout and "cropped the corner" in shown.stdout
    assert "image: 100x80 image/png" in shown.stdout and "answer: 24 coins." in shown.stdout
    assert "input: coins.png" in shown.stdout and str(sample("coins.png").resolve()) in shown.stdout
    data = json.loads(cli(home, "logs", "show", first, "--json").stdout)
    assert data["stop_reason"] == "answered" and data["usage"]["prompt_tokens"] > 0
    [turn1, turn2] = data["turns"]
    assert turn1["steps"][0]["images"][0]["width"] == 100 and turn2["text"] == "24 coins."
    trace = tmp_path / "again.html"
    made = cli(home, "logs", "trace", first, "-o", str(trace))
    assert made.returncode == 0, made.stderr
    html = trace.read_text()
    assert "How many coins are there?" in html and "24 coins." in html and "cropped the corner" in html
    assert html.count("data:image/") >= 2  # the input as shown and the crop


def test_images_are_stored_once_by_content_hash(logged):
    home, _ = logged
    # coins.png went in three times: one blob.
    assert rows(home, "SELECT count(*), count(DISTINCT sha256) FROM run_inputs") == [(3, 1)]
    [(size,)] = rows(home, "SELECT size FROM blobs WHERE sha256 = (SELECT sha256 FROM run_inputs LIMIT 1)")
    assert size == sample("coins.png").stat().st_size


def test_ids_resolve_by_unique_prefix_and_bad_ids_are_one_line(logged):
    home, first = logged
    assert cli(home, "logs", "show", first[:5]).returncode == 0
    for bad, words in [("zz", "not a run id"), ("0000000", "no run with id")]:
        result = cli(home, "logs", "show", bad)
        assert result.returncode == 2 and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    unknown = cli(home, "feedback", "0000000", "text")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1


def test_filters_failed_model_and_since(logged):
    home, _ = logged
    failed = json.loads(cli(home, "logs", "--failed", "--json").stdout)
    assert [r["question"] for r in failed] == ["Anything at all?"]
    assert len(json.loads(cli(home, "logs", "--model", "gemini-3", "--json").stdout)) == 3
    assert json.loads(cli(home, "logs", "--model", "openai:", "--json").stdout) == []
    assert len(json.loads(cli(home, "logs", "--since", "1h", "--json").stdout)) == 3
    assert json.loads(cli(home, "logs", "--since", "2999-01-01", "--json").stdout) == []
    bad = cli(home, "logs", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_logging_off_four_ways(home):
    ask_coins(home, "Logged?", "yes", "--no-log")
    with ScriptedGemini([reply.text("no")]) as server:
        cli(home, "ask", str(sample("coins.png")), "Env off?", "--sandbox", "local", server=server,
            env={"AGENTIC_VISION_LOGS": "off"})
    assert cli(home, "logs", "off").returncode == 0
    assert "off" in cli(home, "logs", "status").stdout
    ask_coins(home, "Switched off?", "yes")
    assert not (home / "logs.db").exists() or rows(home, "SELECT count(*) FROM runs") == [(0,)]
    cli(home, "logs", "on")
    ask_coins(home, "Back on?", "yes")
    assert rows(home, "SELECT question FROM runs") == [("Back on?",)]


def test_concurrent_asks_are_all_logged(home):
    questions = [f"How many coins in batch {i}?" for i in range(4)]
    router = reply.by_question({q: [reply.call("run_python", {"code": "print(6*7)"}), reply.text(f"answer {i}")]
                                for i, q in enumerate(questions)})
    with ScriptedGemini(router=router) as server:
        procs = [subprocess.Popen([sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")), q,
                                   "--sandbox", "local", "--quiet"], env=cli_env(home, server),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for q in questions]
        outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert not [err for _, err in outs if "run log" in err], outs
    logged = rows(home, "SELECT question, answer, stop_reason FROM runs ORDER BY question")
    assert logged == [(q, f"answer {i}", "answered") for i, q in enumerate(questions)]
    assert rows(home, "SELECT count(*) FROM steps") == [(4,)]
    assert rows(home, "PRAGMA journal_mode") == [("wal",)]


def _open_log_at_once(path, barrier):
    from agentic_vision.store.db import connect

    barrier.wait()
    try:
        connect(path).close()
        return None
    except Exception as exc:  # the test shows every failure, not just the first
        return f"{type(exc).__name__}: {exc}"


def test_processes_opening_a_new_log_at_once_all_get_it(tmp_path):
    # The first open of a log creates it, switches it to WAL and migrates it; processes that
    # race on that must each wait their turn, never see a half-made file or get "locked".
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    with context.Manager() as manager, context.Pool(6) as pool:
        failures = []
        for trial in range(25):
            barrier = manager.Barrier(6)
            path = tmp_path / f"logs-{trial}.db"
            failures += [f for f in pool.starmap(_open_log_at_once, [(path, barrier)] * 6) if f]
    assert failures == []


def test_a_run_killed_mid_step_leaves_a_readable_log(home):
    script = [reply.call("run_python", {"code": "import time\nprint('started', flush=True)\ntime.sleep(60)"}),
              reply.text("never")]
    with ScriptedGemini(script) as server:
        proc = subprocess.Popen([sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")),
                                 "Will this finish?", "--sandbox", "local"], env=cli_env(home, server),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(server.requests) < 1:
            time.sleep(0.1)
        time.sleep(1.5)  # the step is running
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert rows(home, "PRAGMA integrity_check") == [("ok",)]
    assert rows(home, "SELECT question, stop_reason FROM runs") == [("Will this finish?", "running")]
    listing = cli(home, "logs")
    assert listing.returncode == 0 and "running" in listing.stdout
    ask_coins(home, "And this one?", "yes")  # the log still takes writes
    assert len(rows(home, "SELECT id FROM runs")) == 2


@pytest.mark.parametrize("content, words", [
    (b"this is not a database at all, just text" * 40, "is not a readable run log"),
    (None, "is an SQLite file of another program"),
])
def test_a_corrupt_or_foreign_log_is_one_line_and_never_replaced(home, content, words):
    path = home / "logs.db"
    if content is None:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE mine (x)")
        conn.commit()
        conn.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    listing = cli(home, "logs")
    assert listing.returncode == 2
    [line] = listing.stderr.strip().splitlines()
    assert str(path) in line and words in line and "move it away" in line
    # A run goes on unlogged, saying so once.
    result, _ = ask_coins(home, "Still answered?", "yes")
    assert result.stdout == "yes\n"
    assert result.stderr.count(str(path)) == 1 and words in result.stderr
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused_with_what_to_do(home):
    ask_coins(home, "First?", "yes")
    conn = sqlite3.connect(home / "logs.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    result = cli(home, "logs")
    assert result.returncode == 2 and "newer agentic-vision" in result.stderr and "upgrade" in result.stderr


def test_a_read_only_home_runs_without_logging_and_says_so_once(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "size=1m") as home:
        make_home(home)
        subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
        result, _ = ask_coins(home, "Read-only home?", "fine")
        assert result.stdout == "fine\n"
        assert result.stderr.count("runs are not logged") == 1, result.stderr
        assert not (home / "logs.db").exists()


def test_a_full_disk_drops_the_log_write_and_never_fails_the_run(tmp_path):
    with mounted_tmpfs(tmp_path / "full", "size=600k") as home:
        make_home(home)
        ask_coins(home, "Before the disk fills?", "yes")
        filler = home / "filler"
        with open(filler, "wb") as f:  # fill what is left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        result, _ = ask_coins(home, "With the disk full?", "still answered")
        assert result.stdout == "still answered\n"
        assert "cannot write the run log" in result.stderr and "full" in result.stderr, result.stderr
        filler.unlink()
        assert rows(home, "PRAGMA integrity_check") == [("ok",)]
        assert ("Before the disk fills?",) in rows(home, "SELECT question FROM runs")


def test_old_images_are_pruned_to_the_budget_and_traces_still_render(home, tmp_path):
    big = "from PIL import Image\nimport numpy as np\nImage.fromarray(np.random.default_rng({seed}).integers(0, 255, (300, 300, 3), dtype='uint8')).show()"
    for seed in range(3):
        ask_coins(home, f"Noise {seed}?", "noise", code=big.format(seed=seed))
    env = {"AGENTIC_VISION_LOGS_MAX_MB": "0.5"}
    with ScriptedGemini([reply.call("run_python", {"code": big.format(seed=9)}), reply.text("noise")]) as server:
        assert cli(home, "ask", str(sample("coins.png")), "Noise 9?", "--sandbox", "local", server=server,
                   env=env).returncode == 0
    [(total,)] = rows(home, "SELECT sum(size) FROM blobs")
    assert total <= 0.5 * 1024 * 1024
    # The newest run kept its image; the oldest lost its own.
    newest = rows(home, "SELECT count(*) FROM step_images s JOIN blobs b ON b.sha256 = s.blob JOIN runs r ON "
                        "r.id = s.run_id WHERE r.question = 'Noise 9?'")
    oldest = rows(home, "SELECT count(*) FROM step_images s JOIN blobs b ON b.sha256 = s.blob JOIN runs r ON "
                        "r.id = s.run_id WHERE r.question = 'Noise 0?'")
    assert newest == [(1,)] and oldest == [(0,)]
    [(old_id,)] = rows(home, "SELECT id FROM runs WHERE question = 'Noise 0?'")
    trace = tmp_path / "old.html"
    assert cli(home, "logs", "trace", old_id[:8], "-o", str(trace)).returncode == 0
    assert "Noise 0?" in trace.read_text()


def test_logs_path_and_an_empty_log(home):
    assert cli(home, "logs", "path").stdout.strip() == str(home / "logs.db")
    result = cli(home, "logs")
    assert result.returncode == 0 and "no runs logged yet" in result.stdout


def test_an_older_log_is_migrated_in_place_keeping_its_runs(home):
    from agentic_vision.store import open_store
    from agentic_vision.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

    path = home / "logs.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])  # the first schema, as the first release wrote it
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (id, started_at, conversation_id, model, question, stop_reason) "
                 "VALUES ('ab12cd34ef56ab12cd34ef56ab12cd34', 1.0, 'c', 'gemini-3-flash-preview', 'Old?', 'answered')")
    conn.commit()
    conn.close()
    store = open_store(path)
    store.close()
    assert rows(home, "PRAGMA user_version") == [(SCHEMA_VERSION,)] and SCHEMA_VERSION >= 2
    assert rows(home, "SELECT question FROM runs") == [("Old?",)]
    shown = cli(home, "logs", "show", "ab12cd34")
    assert shown.returncode == 0 and "question: Old?" in shown.stdout
    # A run logged now keeps where its images came from.
    ask_coins(home, "How many coins are there?", "24")
    [(source,)] = rows(home, "SELECT source_json FROM step_images")
    assert json.loads(source) == {"input": "coins.png", "box": [0, 0, 100, 80], "angle": 0.0, "how": "tracked",
                                  "score": 1.0}
