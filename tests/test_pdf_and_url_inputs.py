"""PDF inputs (made by real libraries) and URL inputs (real HTTP on loopback)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agentic_vision import Agent, InputError
from agentic_vision.inputs.pdf import is_pdf
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


def test_a_png_with_a_pdf_in_a_text_chunk_is_a_png(pdfs):
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", pdfs["plan"].read_bytes()[:4000].decode("latin-1"))  # "%PDF-" at byte ~60
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buf, format="PNG", pnginfo=info)
    data = buf.getvalue()
    assert b"%PDF-" in data[:1024] and not is_pdf(data)
    inputs = prepare_inputs([data])
    assert [(im.name, im.width, im.height) for im in inputs.images] == [("image-1.png", 64, 48)]
    assert not inputs.messages and [f.name for f in inputs.files] == ["image-1.png"]


@pytest.mark.parametrize("prefix, pdf", [(b"", True), (b"\xef\xbb\xbf", True), (b"\r\n\r\n", True),
                                         (b"GIF89a", False), (b"garbage ", False)])
def test_a_pdf_starts_with_its_header(pdfs, prefix, pdf):
    assert is_pdf(prefix + pdfs["plan"].read_bytes()) is pdf


def huge_page_pdf() -> bytes:
    """One 200-inch page: 50 MP at the capped resolution, a few KB of PDF."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(14400, 14400))
    pdf.add_page()
    for i in range(100):
        pdf.line(0, i * 140, 14400, 14400 - i * 140)
    return bytes(pdf.output())


def test_a_render_over_the_memory_cap_is_one_line_and_the_host_stays_small(tmp_path):
    path = tmp_path / "huge.pdf"
    path.write_bytes(huge_page_pdf())
    script = (
        "import sys\n"
        "from agentic_vision.errors import InputError\n"
        "from agentic_vision.inputs.pdf import render_pdf\n"
        "try:\n"
        "    render_pdf(open(sys.argv[1], 'rb').read(), 'huge.pdf')\n"
        "    print('rendered')\n"
        "except InputError as exc:\n"
        "    print(exc)\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AGENTIC_VISION_RENDER_MEMORY_MB": "300"})
    message, peak_kb = done.stdout.strip().splitlines()
    assert message == ("huge.pdf needs more than 300 MiB of memory to render: set AGENTIC_VISION_RENDER_MEMORY_MB "
                       "higher if you trust the file"), done.stdout + done.stderr
    assert int(peak_kb) < 200_000, f"the host process peaked at {int(peak_kb) // 1024} MB"


def test_the_default_caps_render_a_huge_page_at_its_pixel_limit():
    inputs = prepare_inputs([("huge.pdf", huge_page_pdf())])
    [page] = inputs.images
    assert page.width * page.height <= 50_000_000 and page.width > 7000
    assert max(page.model.width, page.model.height) == 1536


HOSTILE = """
import json, os, signal, socket, sys
settings = json.loads(sys.stdin.buffer.readline())
confine(settings)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
found = {"uid": os.getuid()}
def attempt(name, action):
    try:
        action()
        found[name] = "done"
    except OSError as exc:
        found[name] = exc.errno
attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", settings["port"])))
attempt("read", lambda: open(settings["secret"]).read())
attempt("write", lambda: os.write(os.open("/tmp/out", os.O_WRONLY | os.O_CREAT), b"x" * 100))
attempt("fork", lambda: os.fork() == 0 and os._exit(0))
send(sys.stdout.buffer, found)
"""


@pytest.mark.parametrize("layers", ["as found", "without bubblewrap"])
def test_the_renderer_cannot_reach_the_network_files_or_processes(tmp_path, monkeypatch, layers):
    """What PDFium could do once a PDF took it over: the child's own code after confine()."""
    import socket

    from agentic_vision.inputs.pdf import CHILD_PROGRAM
    from agentic_vision.sandboxing import parser_jail

    if layers == "without bubblewrap":
        monkeypatch.setattr(parser_jail, "_bwrap", lambda: None)
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    secret.chmod(0o600)
    program = CHILD_PROGRAM.split('\nif __name__ == "__main__":')[0] + HOSTILE
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        with parser_jail.ParserJail(program, "hostile.pdf", modules=("pypdfium2", "PIL")) as jail:
            jail.start({"port": listener.getsockname()[1], "secret": str(secret)}, b"")
            found = json.loads(jail.frame())
        with pytest.raises(socket.timeout):
            listener.accept()  # nothing came through
    assert found["inet"] != "done" and found["read"] != "done" and found["write"] != "done", found
    assert found["fork"] != "done" and found["uid"] != 0, found


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
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # /slow.png's client gave up waiting, as the test meant it to

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
