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
    assert (page.width, page.height) == (2481, 3507) or abs(page.width - 2481) <= 2  # A4 at 300 dpi
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
    assert "plan.pdf has 5 pages" in first.first_user_text() or "plan.pdf has 5 pages" in str(first.body)


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
    assert str(info.value).startswith(site.url) or site.url in str(info.value)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_url_nothing_answers_at_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InputError, match=rf"cannot fetch http://127.0.0.1:{port}/x.png"):
        prepare_inputs([f"http://127.0.0.1:{port}/x.png"])


class Tricky(http.server.ThreadingHTTPServer):
    """Servers that misbehave: trickled headers or body, redirects to other schemes and
    along chains, a body without Content-Length."""

    def __init__(self):
        coins = sample("coins.png").read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def redirect(self, location):
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def trickle(self, data: bytes, seconds: float = 20):
                end = time.monotonic() + seconds
                for byte in data:
                    if time.monotonic() > end:
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)

            def do_GET(self):
                try:
                    self.route()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def route(self):
                path = self.path
                if path == "/trickled-headers.png":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                    self.trickle(b"a" * 200)
                elif path == "/trickled-body.png":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(coins)))
                    self.end_headers()
                    self.trickle(coins)
                elif path == "/to-file":
                    self.redirect("file:///etc/passwd")
                elif path == "/to-ftp":
                    self.redirect("ftp://127.0.0.1/coins.png")
                elif path == "/hop-1":
                    self.redirect("/hop-2")
                elif path == "/hop-2":
                    self.redirect(f"http://127.0.0.1:{self.server.server_address[1]}/images/big.png")
                elif path == "/short":
                    self.redirect("/images/the-final-name.png?x=1")
                elif path in ("/images/the-final-name.png?x=1", "/images/big.png", "/no-length.png"):
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    if path != "/no-length.png":  # HTTP/1.0: the body ends when the connection does
                        self.send_header("Content-Length", str(len(coins)))
                    self.end_headers()
                    self.wfile.write(coins)
                else:
                    self.send_error(404)

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    __enter__ = Site.__enter__
    __exit__ = Site.__exit__


@pytest.mark.parametrize("path", ["/trickled-headers.png", "/trickled-body.png"])
def test_a_download_is_cut_at_its_deadline_however_the_bytes_trickle(path):
    # 0.5 s per read and 2 s in all; the server sends a byte every 0.2 s for 20 s.
    with Tricky() as site:
        started = time.monotonic()
        with pytest.raises(InputError) as info:
            prepare_inputs([site.url + path], options=InputOptions(download_timeout=0.5))
        took = time.monotonic() - started
    assert f"{site.url}{path} took longer than 2 s to download" == str(info.value)
    assert took < 3.5, f"cut after {took:.1f} s"


@pytest.mark.parametrize("path, scheme", [("/to-file", "file"), ("/to-ftp", "ftp")])
def test_redirects_go_to_http_only(path, scheme):
    with Tricky() as site:
        with pytest.raises(InputError) as info:
            prepare_inputs([site.url + path])
    message = str(info.value)
    assert message.startswith(f"{site.url}{path} redirects to a {scheme}: URL") and "only http(s)" in message
    assert "\n" not in message


def test_a_redirect_chain_is_checked_for_size_and_named_from_its_end():
    with Tricky() as site:
        with pytest.raises(InputError, match=r"/hop-1 is 0 MiB, over the limit of 1000 bytes"):
            prepare_inputs([site.url + "/hop-1"], options=InputOptions(max_download_bytes=1000))
        inputs = prepare_inputs([site.url + "/short"])
        with pytest.raises(InputError, match=r"/no-length.png is larger than the limit of 1000 bytes"):
            prepare_inputs([site.url + "/no-length.png"], options=InputOptions(max_download_bytes=1000))
    assert [im.name for im in inputs.images] == ["the-final-name.png"]
    assert inputs.images[0].sandbox_data == sample("coins.png").read_bytes()
