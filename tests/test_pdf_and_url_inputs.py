"""PDF inputs (made by real libraries) and URL inputs (real HTTP on loopback)."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest

from agentic_vision import Agent, InputError
from agentic_vision.inputs.sources import InputOptions, prepare_inputs
from agentic_vision.models.gemini import GeminiModel
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pypdfium2
    from fpdf import FPDF
    from matplotlib.backends.backend_pdf import PdfPages

    root = tmp_path_factory.mktemp("pdfs")
    with PdfPages(root / "plan.pdf") as pdf:  # five A4 pages
        for i in range(5):
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.4, 0.5, f"PAGE {i + 1}", fontsize=40)
            pdf.savefig(fig)
            plt.close(fig)
    locked = FPDF()
    locked.add_page()
    locked.set_font("helvetica", size=20)
    locked.cell(text="secret")
    locked.set_encryption(owner_password="owner", user_password="user")
    locked.output(str(root / "locked.pdf"))
    pypdfium2.PdfDocument.new().save(str(root / "empty.pdf"))
    (root / "corrupt.pdf").write_bytes((root / "plan.pdf").read_bytes()[:3000])
    return {p.stem: p for p in root.glob("*.pdf")}


def test_a_pdf_shows_the_first_pages_and_says_so(pdfs):
    inputs = prepare_inputs([pdfs["plan"]])
    assert [im.name for im in inputs.images] == ["plan-page-1.png", "plan-page-2.png", "plan-page-3.png"]
    assert [f.name for f in inputs.files] == ["plan.pdf", "plan-page-1.png", "plan-page-2.png", "plan-page-3.png"]
    page = inputs.images[0]
    assert abs(page.width - 2481) <= 1 and abs(page.height - 3507) <= 1  # A4 at 300 dpi (8.27 x 11.69 in), rounded
    assert max(page.model.width, page.model.height) == 1536
    [note] = inputs.messages
    assert "plan.pdf has 5 pages" in note and "Only the first 3 are shown by default" in note
    assert "pypdfium2.PdfDocument('plan.pdf')" in note
    assert inputs.notes["plan.pdf"] == "PDF, 5 pages"


@pytest.mark.parametrize("spec, pages", [("4", [4]), ("2-3,5", [2, 3, 5]), (5, [5])])
def test_pages_are_chosen(pdfs, spec, pages):
    inputs = prepare_inputs([pdfs["plan"]], options=InputOptions(pages=spec))
    assert [im.name for im in inputs.images] == [f"plan-page-{n}.png" for n in pages]


@pytest.mark.parametrize("name, spec, message", [
    ("locked", None, "locked.pdf is encrypted (password-protected)"),
    ("empty", None, "empty.pdf has no pages"),
    ("corrupt", None, "corrupt.pdf is not a readable PDF"),
    ("plan", "9", "plan.pdf has 5 pages: --page 9 asks for page 9"),
    ("plan", "x", "is not a page list"),
])
def test_bad_pdfs_are_one_line(pdfs, name, spec, message):
    with pytest.raises(InputError) as info:
        prepare_inputs([pdfs[name]], options=InputOptions(pages=spec))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_code_gets_the_pdf_and_the_pages_and_can_render_more(pdfs):
    code = ("import os, pypdfium2\nfrom PIL import Image\nprint(sorted(os.listdir('.')))\n"
            "print(Image.open('plan-page-2.png').size)\n"
            "print(pypdfium2.PdfDocument('plan.pdf')[4].render(scale=1).to_pil().size)")
    script = [reply.call("run_python", {"code": code}),
              lambda request: reply.text(request.function_responses()[-1]["response"]["output"])]
    with ScriptedGemini(script) as server:
        gemini = GeminiModel("gemini-3-flash-preview", api_key="k", base_url=server.url, retries=0)
        result = Agent(model=gemini, sandbox="local").run("What is on page 2?", images=[pdfs["plan"]])
        first = server.requests[0]
    assert "['plan-page-1.png', 'plan-page-2.png', 'plan-page-3.png', 'plan.pdf']" in result.answer
    assert "(596, 842)" in result.answer  # page 5 rendered inside at 72 dpi
    assert len(first.images()) == 3
    tool = first["tools"][0]["functionDeclarations"][0]["description"]
    assert "plan-page-1.png" in tool and "page 1 of plan.pdf at 300 dpi" in tool and "pypdfium2" in tool
    assert "plan.pdf has 5 pages" in first.first_user_text()


# -- URLs ----------------------------------------------------------------------------------


class Site(http.server.ThreadingHTTPServer):
    """/coins.png, /page.html, /slow.png (answers after 3 s), anything else 404."""

    def __init__(self):
        coins = sample("coins.png").read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/slow.png":
                    time.sleep(3)
                body, ctype = {"/coins.png": (coins, "image/png"), "/octet": (coins, "application/octet-stream"),
                               "/page.html": (b"<html>hello</html>", "text/html"),
                               "/slow.png": (coins, "image/png")}.get(self.path, (None, None))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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


def test_an_image_url_is_fetched_on_the_host_and_named_from_its_path():
    with Site() as site:
        inputs = prepare_inputs([f"{site.url}/coins.png", f"{site.url}/octet"])
    assert [im.name for im in inputs.images] == ["coins.png", "octet.png"]
    assert inputs.images[0].sandbox_data == sample("coins.png").read_bytes()


@pytest.mark.parametrize("path, options, message", [
    ("/missing.png", {}, "/missing.png answered 404 Not Found"),
    ("/page.html", {}, "/page.html is not an image or a PDF (it sent text/html)"),
    ("/slow.png", {"download_timeout": 0.5}, "/slow.png did not answer within 0.5 s"),
    ("/coins.png", {"max_download_bytes": 1000}, "/coins.png is 0 MiB, over the limit of 1000 bytes"),
])
def test_url_failures_are_one_line_naming_the_url(path, options, message):
    with Site() as site:
        with pytest.raises(InputError) as info:
            prepare_inputs([site.url + path], options=InputOptions(**options))
    assert str(info.value).startswith(site.url + path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_url_nothing_answers_at_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InputError, match=rf"cannot fetch http://127.0.0.1:{port}/x.png"):
        prepare_inputs([f"http://127.0.0.1:{port}/x.png"])
