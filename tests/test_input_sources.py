"""Inputs from folders, URLs and data files: the caps and the refusals, and `ask --file`."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest

from agentic_vision.errors import InputError
from agentic_vision.inputs.sources import MAX_FOLDER_FILES, InputOptions, prepare_inputs
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample

COINS = sample("coins.png").read_bytes()


class Site(http.server.ThreadingHTTPServer):
    """/coins.png with no Content-Length (the body ends when the connection does), /table.csv."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                body, ctype = {"/coins.png": (COINS, "image/png"),
                               "/table.csv": (b"x,y\n1,2\n", "text/csv")}.get(self.path, (None, None))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.end_headers()
                try:
                    for i in range(0, len(body), 4096):
                        self.wfile.write(body[i:i + 4096])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a capped download hangs up mid-body, as the tests mean it to

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


def test_a_download_without_a_length_is_cut_at_the_cap():
    with Site() as site:
        fine = prepare_inputs([f"{site.url}/coins.png"])
        with pytest.raises(InputError) as capped:
            prepare_inputs([f"{site.url}/coins.png"], options=InputOptions(max_download_bytes=len(COINS) // 2))
    assert fine.images[0].sandbox_data == COINS
    assert str(capped.value) == f"{site.url}/coins.png is larger than the limit of {len(COINS) // 2} bytes"


def test_urls_in_files_are_fetched_and_named_from_their_path():
    with Site() as site:
        inputs = prepare_inputs(files=[f"{site.url}/table.csv"])
        with pytest.raises(InputError) as capped:
            prepare_inputs(files=[f"{site.url}/coins.png"], options=InputOptions(max_download_bytes=1000))
    assert [(f.name, f.data) for f in inputs.files] == [("table.csv", b"x,y\n1,2\n")]
    assert str(capped.value) == f"{site.url}/coins.png is larger than the limit of 1000 bytes"


def test_two_inputs_of_one_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "coins.png").write_bytes(COINS)
    (tmp_path / "coins.png").write_bytes(b"not the image")
    with pytest.raises(InputError) as images:
        prepare_inputs([tmp_path / "a" / "coins.png", tmp_path / "b" / "coins.png"])
    with pytest.raises(InputError) as mixed:
        prepare_inputs([tmp_path / "a" / "coins.png"], files=[str(tmp_path / "coins.png")])
    assert str(images.value) == str(mixed.value) == "two inputs are named 'coins.png'; rename one"


def test_folders_are_capped_and_an_empty_one_is_refused(tmp_path):
    full, empty, just_right = tmp_path / "full", tmp_path / "empty", tmp_path / "ok"
    for folder in (full, empty, just_right):
        folder.mkdir()
    (empty / "notes.txt").write_text("no images here")
    for i in range(MAX_FOLDER_FILES + 1):
        shutil.copy(sample("coins.png"), full / f"coins-{i:02d}.png")
    for i in range(2):
        shutil.copy(sample("coins.png"), just_right / f"coins-{i}.png")
    with pytest.raises(InputError) as over:
        prepare_inputs([full])
    with pytest.raises(InputError) as nothing:
        prepare_inputs([empty])
    assert str(over.value) == (f"the folder {full} has {MAX_FOLDER_FILES + 1} images; at most {MAX_FOLDER_FILES} "
                               "go to the model at once: pick some")
    assert str(nothing.value) == f"no images or PDFs in the folder {empty}"
    assert [im.name for im in prepare_inputs([just_right]).images] == ["coins-0.png", "coins-1.png"]


def test_ask_file_puts_a_data_file_beside_the_image(tmp_path):
    (tmp_path / "prices.csv").write_text("item,price\ncoin,2\n")
    code = "import csv\nprint(list(csv.DictReader(open('prices.csv'))))"
    script = [reply.call("run_python", {"code": code}),
              lambda r: reply.text(r.function_responses()[-1]["response"]["output"].strip())]
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY",)}
    with ScriptedGemini(script) as server:
        env.update(GEMINI_API_KEY="k", GOOGLE_GEMINI_BASE_URL=server.url)
        done = subprocess.run([sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")), "What costs what?",
                               "--file", str(tmp_path / "prices.csv"), "--sandbox", "local"],
                              capture_output=True, text=True, env=env, timeout=300)
        first = server.requests[0]
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[{'item': 'coin', 'price': '2'}]\n"
    tool = first["tools"][0]["functionDeclarations"][0]["description"]
    assert "prices.csv" in tool and len(first.images()) == 1  # the model is told the file is there
