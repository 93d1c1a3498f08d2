"""PDFs sent to a real `serve` process: rendered in a jailed child that the gateway kills when
the client goes away, while other clients are served; the effects are read from /proc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import pytest
from google import genai
from google.genai import types

from agentic_vision.testing.gemini_server import ScriptedGemini
from session_host import descendants

pytestmark = pytest.mark.timeout(240)
MODEL = "gemini-3-flash-preview"
TICKS = os.sysconf("SC_CLK_TCK")


def huge_pdf(pages: int = 3, lines: int = 6000) -> bytes:
    """~120 KB of PDF whose 200-inch pages take PDFium over 30 CPU seconds each to draw at 50 MP
    (here), so the render outlasts the client's patience by far."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(14400, 14400))
    pdf.set_line_width(3)
    for _ in range(pages):
        pdf.add_page()
        for i in range(lines):
            pdf.line((i * 37) % 14400, 0, 14400 - (i * 53) % 14400, 14400)
    return bytes(pdf.output())


def small_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=30)
    pdf.cell(text="ROOM 12: 4.2 m")
    return bytes(pdf.output())


def _stat(pid: int) -> list[str]:
    return (open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1]).split()


def renderers(root: int) -> set[int]:
    """The gateway's descendants that are PDF renderers (bubblewrap or the child itself)."""
    found = set()
    for pid in descendants(root):
        try:
            if b"pypdfium2" in open(f"/proc/{pid}/cmdline", "rb").read():
                found.add(pid)
        except OSError:
            pass
    return found


def cpu_seconds(root: int) -> float:
    """CPU time of the gateway and of everything under it, live or reaped (utime, stime,
    cutime, cstime of the gateway and of each live descendant)."""
    total = 0
    for pid in {root} | descendants(root):
        try:
            fields = _stat(pid)
            total += sum(int(v) for v in fields[11:15])
        except (OSError, ValueError, IndexError):
            pass
    return total / TICKS


@pytest.fixture
def served():
    """A `serve` process in front of a scripted upstream: (url, pid, upstream)."""
    with ScriptedGemini(["The room is 4.2 m wide."]) as upstream:
        env = {**os.environ, "GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": upstream.url,
               "AGENTIC_VISION_RENDER_SECONDS": "300"}
        server = subprocess.Popen([sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "local",
                                   "--port", "0", "--log-level", "warning"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = server.stderr.readline()
            port = int(re.search(r"gateway on http://127\.0\.0\.1:(\d+) ", line).group(1))
            yield f"http://127.0.0.1:{port}", server.pid, upstream
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # still waiting for a render: nothing may be left behind
                server.kill()
                server.wait(timeout=30)


def ask(url: str, pdf: bytes, timeout_ms: int | None = None):
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url, timeout=timeout_ms))
    return client.models.generate_content(
        model=MODEL, contents=[types.Part.from_bytes(data=pdf, mime_type="application/pdf"), "How wide is room 12?"],
        config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())]))


def test_a_client_that_gives_up_on_a_costly_pdf_stops_its_render_and_others_are_served(served):
    url, pid, upstream = served
    gave_up: list[BaseException] = []

    def costly() -> None:
        try:
            ask(url, huge_pdf(), timeout_ms=25_000)  # the render needs over 90 s of CPU
        except Exception as exc:  # the SDK's own timeout: the client gives up and disconnects
            gave_up.append(exc)

    client = threading.Thread(target=costly)
    client.start()
    deadline = time.monotonic() + 30
    while not renderers(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    costly_render = renderers(pid)
    assert costly_render, "the PDF was not rendered in a child process of the gateway"

    # Another client with a PDF of its own is answered while that render runs.
    response = ask(url, small_pdf())
    assert response.text == "The room is 4.2 m wide."
    assert costly_render & renderers(pid), "the costly render ended before the other client was answered"
    [request] = upstream.requests
    assert len(request.images()) == 1  # the small PDF's page, rendered, went to the model

    client.join(timeout=60)
    assert gave_up, "the costly request was answered instead of running into the client's timeout"
    # The client is gone: its render is killed, nothing of it is left, the gateway goes quiet.
    deadline = time.monotonic() + 5
    while renderers(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not renderers(pid), "a renderer outlived the client that asked for it"
    assert not costly_render & descendants(pid)
    before = cpu_seconds(pid)
    time.sleep(3)
    grown = cpu_seconds(pid) - before
    assert grown < 1.0, f"the gateway used {grown:.1f} s of CPU in 3 s after the client went away"
    assert len(upstream.requests) == 1  # the costly request never reached the model
