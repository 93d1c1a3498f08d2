"""The HTML trace: one self-contained, escaped page of a whole run."""

from __future__ import annotations

import base64
import io
import os
import re
from html.parser import HTMLParser

import pytest
from PIL import Image as PILImage

from agentic_vision.values import Image, Outcome
from agentic_vision.models.base import ModelImage, Usage
from agentic_vision.loop.result import AgentResult, Step, Timings, Turn
from agentic_vision.trace import render_trace, write_trace

from conftest import sample

EVIL = "<script>alert(1)</script>"
VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}


# -- real images -------------------------------------------------------------------


def encode(img: PILImage.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def coins() -> PILImage.Image:
    with PILImage.open(sample("coins.png")) as img:
        return img.convert("RGB")


@pytest.fixture(scope="module")
def cat_jpeg() -> bytes:
    with PILImage.open(sample("chelsea.png")) as img:
        return encode(img.convert("RGB").resize((200, 150)), "JPEG")


def image(img: PILImage.Image, fmt: str = "PNG") -> Image:
    return Image(encode(img, fmt), f"image/{fmt.lower()}", img.width, img.height)


# -- the page, parsed --------------------------------------------------------------


class Page(HTMLParser):
    """Tags with their attributes, the text, the text of each code block, and tag balance."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.codes: list[str] = []
        self.stack: list[str] = []
        self._code_depth: int | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "pre" and "code" in (attrs.get("class") or "").split():
            self._code_depth = len(self.stack)
            self.codes.append("")

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        if self._code_depth == len(self.stack):
            self._code_depth = None
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._code_depth is not None:
            self.codes[-1] += data

    def find(self, tag: str) -> list[dict]:
        return [attrs for t, attrs in self.tags if t == tag]

    def classes(self) -> list[str]:
        return [c for _, attrs in self.tags for c in (attrs.get("class") or "").split()]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


# -- runs --------------------------------------------------------------------------


CODE_1 = '''from PIL import Image
img = Image.open("coins.png")
print(img.size)  # how big is it?
img.crop((0, 0, 192, 150)).resize((384, 300)).save("zoom.png")
'''
CODE_2 = '''import numpy as np
a = np.asarray(Image.open("coins.png").convert("L"))
mask = a > 100
print(f"{mask.mean():.3f} bright", """two
lines""")
'''


@pytest.fixture
def answered(coins, cat_jpeg) -> AgentResult:
    zoom = coins.crop((0, 0, 192, 150)).resize((384, 300))
    gray = coins.convert("L").crop((100, 100, 300, 250))
    return AgentResult(
        question="How many coins are there?",
        answer="There are 24 coins.",
        stop_reason="answered",
        model="gemini-3-flash-preview",
        sandbox="docker",
        turns=[
            Turn(thoughts="I should zoom in first.", text="Let me zoom in.",
                 steps=[Step(CODE_1, Outcome.OK, "(384, 303)\n", [image(zoom)], 0.42)]),
            Turn(thoughts="Now threshold.", text="Now I threshold it.",
                 steps=[Step(CODE_2, Outcome.OK, "0.412 bright two\nlines\n",
                             [image(gray), Image(cat_jpeg, "image/jpeg", 200, 150)], 1.25)]),
            Turn(thoughts="The count is clear.", text="There are 24 coins."),
        ],
        usage=Usage(prompt_tokens=5120, output_tokens=812, thoughts_tokens=1430, tool_use_prompt_tokens=2210),
        timings=Timings(model_s=9.84, sandbox_s=1.67, wall_s=12.3),
        inputs=[ModelImage(sample("coins.png").read_bytes(), "image/png", coins.width, coins.height, "coins.png")],
        files=["prices.csv"],
    )


def test_an_answered_run_shows_everything_in_order(answered):
    html = render_trace(answered)
    page = Page(html)
    assert not page.stack, "every tag is closed"
    text = page.all_text
    order = ["Question", "How many coins are there?", "prices.csv", "Turn 1", "I should zoom in first.",
             "Let me zoom in.", "Step 1", "0.42 s", "from PIL", "(384, 303)", "Turn 2", "Now threshold.", "Step 2",
             "1.25 s", "0.412 bright", "Turn 3", "The count is clear.", "Answer", "There are 24 coins.", "Stop reason"]
    at = 0
    for s in order:  # each after the one before
        at = text.find(s, at)
        assert at != -1, f"{s!r} missing or out of order"
    for expected in ["5,120 prompt", "812 output", "1,430 thoughts", "2,210 tool use", "9.84 s model",
                     "1.67 s sandbox", "12.30 s wall", "gemini-3-flash-preview", "docker", "ANSWERED"]:
        assert expected in text
    # the header summary: answer, steps, tokens, time
    header = text[: text.find("Question")]
    assert "There are 24 coins." in header and "2 steps" in header and "9,572 tokens" in header and "12.3 s" in header
    # thinking is collapsible and muted
    thoughts = [a for a in page.find("details") if "thoughts" in (a.get("class") or "")]
    assert len(thoughts) == 3
    assert page.classes().count("ok") >= 2
    assert page.codes == [CODE_1.rstrip("\n"), CODE_2.rstrip("\n")], "code survives highlighting unchanged"


def test_code_has_line_numbers_and_light_highlighting(answered):
    html = render_trace(answered)
    first = html[html.index('<pre class="code">'): html.index("</pre>")]
    assert first.count('<span class="ln">') == CODE_1.rstrip("\n").count("\n") + 1
    assert '<span class="kw">from</span>' in first and '<span class="kw">import</span>' in first
    assert '<span class="str">&quot;coins.png&quot;</span>' in first
    assert '<span class="com"># how big is it?</span>' in first
    assert '<span class="bi">print</span>' in first and '<span class="bi">open</span>' not in first  # .open is a method
    # a triple-quoted string over two lines stays whole and each line gets a number
    second = html[html.index('<pre class="code">', html.index(first) + 1):]
    assert second[: second.index("</pre>")].count('<span class="ln">') == CODE_2.rstrip("\n").count("\n") + 1


def test_code_that_does_not_tokenize_keeps_its_text():
    broken = 'print("unterminated\nx = (1,\n  if True:\n'
    result = AgentResult("q", None, "max_steps", "m", "local",
                         turns=[Turn(steps=[Step(broken, Outcome.FAILED, "SyntaxError", [], 0.01)])])
    page = Page(render_trace(result))
    assert page.codes == [broken.rstrip("\n")]


def test_code_that_does_not_parse_is_still_highlighted():
    # Model code is often cut off; Pygments colours what it can instead of giving up on all of it.
    cut = 'import numpy as np\nfor i in range(3):\n    print("unterminated\n'
    result = AgentResult("q", None, "max_steps", "m", "local",
                         turns=[Turn(steps=[Step(cut, Outcome.FAILED, "SyntaxError", [], 0.01)])])
    html = render_trace(result)
    assert '<span class="kw">import</span>' in html and '<span class="kw">for</span>' in html
    assert '<span class="bi">range</span>' in html and '<span class="num">3</span>' in html
    assert Page(html).codes == [cut.rstrip("\n")]


def test_failed_and_deadline_steps_have_their_badges(coins):
    note = "No more code will run: 6 runs in a row failed. Answer the question now from what you have seen."
    result = AgentResult(
        question="What is written on the coin?", answer="I could not read it.", stop_reason="retries_exhausted",
        model="openai:gpt-4o", sandbox="local",
        turns=[
            Turn(text="Trying.", steps=[
                Step("1/0", Outcome.FAILED, "ZeroDivisionError: division by zero", [], 0.05),
                Step("while True:\n    pass", Outcome.DEADLINE_EXCEEDED, "stopped after 30 s", [], 30.0),
                Step("print('ok')", Outcome.OK, "ok", [image(coins)], 0.1),
            ], note=note),
            Turn(text="I could not read it."),
        ],
    )
    html = render_trace(result)
    page = Page(html)
    badges = [(a.get("class") or "").split() for t, a in page.tags if "badge" in (a.get("class") or "").split()]
    assert ["badge", "bad"] in badges and ["badge", "warn"] in badges and ["badge", "ok"] in badges
    assert re.search(r'class="badge bad">FAILED<', html)
    assert re.search(r'class="badge warn">DEADLINE EXCEEDED<', html)
    assert re.search(r'class="badge ok">OK<', html)
    assert "30.00 s" in page.all_text
    assert note in page.all_text
    assert "RETRIES EXHAUSTED" in page.all_text
    assert "ZeroDivisionError: division by zero" in page.all_text


def test_a_model_error_without_an_answer(coins):
    result = AgentResult(
        question="What is this?", answer=None, stop_reason="model_error", model="gemini-3-pro-preview",
        sandbox="local", error="429 RESOURCE_EXHAUSTED: quota exceeded",
        turns=[Turn(text="Let me look.", steps=[Step("print(1)", Outcome.OK, "1", [], 0.02)])],
        inputs=[ModelImage(encode(coins, "PNG"), "image/png", coins.width, coins.height, "coins.png")],
    )
    page = Page(render_trace(result))
    text = page.all_text
    assert "MODEL ERROR" in text
    assert "429 RESOURCE_EXHAUSTED: quota exceeded" in text
    assert "without an answer" in text
    assert "No answer" in text[: text.find("Question")]
    assert not page.stack


@pytest.mark.parametrize("where", ["code", "output", "answer", "question", "thoughts", "text", "note", "error",
                                   "file", "model", "label"])
def test_everything_from_the_user_or_the_model_is_escaped(where, coins):
    def put(name, default):
        return EVIL if where == name else default

    result = AgentResult(
        question=put("question", "q?"), answer=put("answer", "a."), stop_reason="answered",
        model=put("model", "m"), sandbox="local", error=put("error", None),
        turns=[Turn(thoughts=put("thoughts", "t"), text=put("text", "x"), note=put("note", ""),
                    steps=[Step(put("code", "print(1)"), Outcome.OK, put("output", "1"), [image(coins)], 0.1)])],
        inputs=[ModelImage(encode(coins, "PNG"), "image/png", coins.width, coins.height, put("label", "coins.png"))],
        files=[put("file", "data.csv")],
    )
    html = render_trace(result)
    page = Page(html)
    assert "<script" not in html.lower()
    assert not page.find("script")
    assert EVIL in page.all_text or any(EVIL in (a.get("alt") or "") for a in page.find("img"))


def test_images_are_embedded_and_decode_to_the_same_bytes(answered):
    page = Page(render_trace(answered))
    imgs = page.find("img")
    expected = [im for im in answered.inputs] + [im for step in answered.steps for im in step.images]
    assert len(imgs) == len(expected) == 4
    for attrs, im in zip(imgs, expected):
        match = re.fullmatch(r"data:([\w/+.-]+);base64,([A-Za-z0-9+/=]+)", attrs["src"])
        assert match, attrs["src"][:60]
        embedded = base64.b64decode(match.group(2))
        if match.group(1) == im.mime_type:
            assert embedded == im.data  # small, or not smaller as JPEG: as it is
        else:  # a large photo as JPEG: the same picture, much smaller
            assert match.group(1) == "image/jpeg" and len(embedded) < 0.6 * len(im.data)
            from PIL import Image, ImageChops, ImageStat
            a, b = (Image.open(io.BytesIO(d)).convert("RGB") for d in (im.data, embedded))
            assert a.size == b.size and max(ImageStat.Stat(ImageChops.difference(a, b)).mean) < 4
        assert (int(attrs["width"]), int(attrs["height"])) == (im.width, im.height)
    # each thumbnail opens full size without a script: it sits in a <details>
    assert len([a for a in page.find("details") if "thoughts" not in (a.get("class") or "")]) == 4


def test_nothing_comes_from_elsewhere(answered):
    answered.turns[0].steps[0].output = "see https://example.com/x.png and <link rel=stylesheet href=http://x>"
    html = render_trace(answered)
    page = Page(html)
    assert not page.find("link")
    assert not page.find("script")
    assert not page.find("iframe") and not page.find("object") and not page.find("embed")
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "action", "poster"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "file:")), (tag, name, value[:60])
    css = html[html.index("<style>"): html.index("</style>")]
    assert "url(" not in css and "@import" not in css and "@font-face" not in css


def test_write_trace_is_atomic_and_makes_folders(answered, tmp_path):
    target = tmp_path / "deep" / "er" / "trace.html"
    written = write_trace(answered, target)
    assert written == target
    assert target.read_text(encoding="utf-8") == render_trace(answered)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask, "permissions as open() would give"
    # overwrite in place, no temporary files left behind
    answered.answer = "Twenty-four."
    write_trace(answered, str(target))
    assert "Twenty-four." in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in target.parent.iterdir()) == ["trace.html"]


def test_a_failed_write_leaves_the_old_file(answered, tmp_path, monkeypatch):
    target = tmp_path / "trace.html"
    target.write_text("old", encoding="utf-8")
    import agentic_vision.trace as trace

    def boom(result):
        raise RuntimeError("render failed")

    monkeypatch.setattr(trace, "render_trace", boom)
    with pytest.raises(RuntimeError):
        trace.write_trace(answered, target)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.html"]


@pytest.mark.parametrize("reason", ["max_steps", "retries_exhausted"])
def test_forced_stops_show_their_reason(reason):
    result = AgentResult("q", "best guess", reason, "m", "local",
                         turns=[Turn(text="t", steps=[Step("x = 1", Outcome.OK, "", [], 0.0)], note="No more code"),
                                Turn(text="best guess")])
    text = Page(render_trace(result)).all_text
    assert reason.replace("_", " ").upper() in text
    assert "No more code" in text and "best guess" in text


def _png(img: PILImage.Image) -> Image:
    out = io.BytesIO()
    img.save(out, "PNG")
    return Image(out.getvalue(), "image/png", img.width, img.height)


def test_a_photo_crop_is_embedded_small_and_an_image_with_alpha_stays_png():
    photo = PILImage.open(sample("astronaut.png")).convert("RGB")
    crop = _png(photo.crop((0, 0, 256, 256)))
    assert len(crop.data) > 100_000  # what made traces of small images 277 KB
    result = AgentResult("q", "a", "answered", "m", "local",
                         turns=[Turn(steps=[Step("x", Outcome.OK, "", [crop], 0.01)])])
    html = render_trace(result)
    assert len(html) < 60_000 and html.count("data:image/jpeg") == 1
    clear = photo.crop((0, 0, 256, 256)).convert("RGBA")
    clear.putalpha(128)
    with_alpha = _png(clear)
    result.turns[0].steps[0].images = [with_alpha]
    assert render_trace(result).count("data:image/png") == 1
