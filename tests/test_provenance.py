"""Where each shown image came from: tracked in the sandbox, matched on the host, on both sandboxes.

Model code of the usual kinds runs in a real sandbox on a real photograph;
each shown image must name the region of the input it shows, within a few
pixels of the region the code took.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import sample, require

SLACK = 3  # pixels


@pytest.fixture
def session(open_sandbox, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(sample("rocket.jpg").read_bytes())  # 640x427
    return open_sandbox(inputs=[path])


def only_source(execution):
    assert execution.ok, execution.output
    [image] = execution.images
    assert image.source is not None, "no source for a region of the input"
    return image, image.source


def near(box, expected, slack=SLACK):
    return all(abs(a - b) <= slack for a, b in zip(box, expected)), f"{box} is not {expected}"


def check_tracked(execution, expected, angle=0.0):
    image, source = only_source(execution)
    assert source.input == "photo.jpg" and source.how == "tracked" and source.score == 1.0
    ok, why = near(source.box, expected)
    assert ok, why
    assert source.angle == pytest.approx(angle, abs=0.5)
    return image


def test_a_pil_crop_then_resize(session):
    run = session.run("from PIL import Image\nim = Image.open('photo.jpg')\n"
                      "display(im.crop((100, 50, 300, 200)).resize((400, 300)))")
    image = check_tracked(run, [100, 50, 300, 200])
    assert (image.width, image.height) == (400, 300)


def test_numpy_slicing_then_fromarray(session):
    run = session.run("import numpy as np\nfrom PIL import Image\na = np.array(Image.open('photo.jpg'))\n"
                      "display(Image.fromarray(a[60:220, 120:360]))")
    check_tracked(run, [120, 60, 360, 220])


def test_a_strided_view_of_np_asarray(session):
    run = session.run("import numpy as np\nfrom PIL import Image\na = np.asarray(Image.open('photo.jpg'))\n"
                      "display(a[100:300:2, 50:250:2])")
    image = check_tracked(run, [50, 100, 250, 300])
    assert (image.width, image.height) == (100, 100)


def test_a_cv2_crop_then_resize_saved_to_a_file(session):
    run = session.run("import cv2\nb = cv2.imread('photo.jpg')\n"
                      "zoom = cv2.resize(b[40:140, 200:400], None, fx=2, fy=2)\ncv2.imwrite('zoom.png', zoom)")
    image = check_tracked(run, [200, 40, 400, 140])
    assert (image.width, image.height) == (400, 200)


def test_a_crop_of_a_crop_annotated_with_imagedraw(session):
    run = session.run("from PIL import Image, ImageDraw\nim = Image.open('photo.jpg')\n"
                      "part = im.crop((50, 100, 350, 500)).crop((20, 30, 220, 230)).convert('RGB')\n"
                      "ImageDraw.Draw(part).rectangle((10, 10, 100, 100), outline='red', width=3)\npart.show()")
    check_tracked(run, [70, 130, 270, 330])


MORE_CHAINS = {
    "ImageOps.fit to a square": ("from PIL import Image, ImageOps\n"
                                 "display(ImageOps.fit(Image.open('photo.jpg').crop((100, 100, 500, 300)), (128, 128)))",
                                 [200, 100, 400, 300]),
    "thumbnail in place, greyscale": ("from PIL import Image, ImageOps\nim = Image.open('photo.jpg').crop((0, 0, 400, 300))\n"
                                      "im.thumbnail((100, 100))\ndisplay(ImageOps.grayscale(im))", [0, 0, 400, 300]),
    "transpose by 90 degrees": ("from PIL import Image\n"
                                "display(Image.open('photo.jpg').crop((50, 60, 250, 160)).transpose(Image.Transpose.ROTATE_90))",
                                [50, 60, 250, 160]),
    "cv2 colour conversion of a slice, shown with imshow": (
        "import cv2\nb = cv2.imread('photo.jpg')\ncv2.imshow('x', cv2.GaussianBlur(cv2.cvtColor(b[200:400, 300:600], "
        "cv2.COLOR_BGR2GRAY), (5, 5), 0))", [300, 200, 600, 400]),
    "saved with PIL after a numpy round trip": (
        "import numpy as np\nfrom PIL import Image\na = np.asarray(Image.open('photo.jpg'))\n"
        "Image.fromarray(np.ascontiguousarray(a[10:110, 20:220])).resize((400, 200)).save('zoom.jpg')", [20, 10, 220, 110]),
}


@pytest.mark.parametrize("chain", list(MORE_CHAINS))
def test_more_chains(session, chain):
    code, expected = MORE_CHAINS[chain]
    check_tracked(session.run(code), expected)


def test_a_rotated_crop_is_a_turned_box_of_the_input(session):
    run = session.run("from PIL import Image\nim = Image.open('photo.jpg').convert('RGB')\n"
                      "display(im.rotate(30, expand=True, resample=Image.BICUBIC).crop((250, 300, 410, 420)))")
    image, source = only_source(run)
    assert source.how == "tracked" and source.angle == pytest.approx(-30, abs=0.5)
    x0, y0, x1, y1 = source.box
    assert (x1 - x0, y1 - y0) == pytest.approx((160, 120), abs=2)
    # The truth is in the pixels: turn the input about the box's centre so the
    # box is upright, cut it out, and it is what the model was shown.
    original = Image.open(sample("rocket.jpg")).convert("RGB")
    upright = original.rotate(-source.angle, center=((x0 + x1) / 2, (y0 + y1) / 2), resample=Image.BICUBIC)
    expected = np.asarray(upright.crop((x0, y0, x1, y1)).resize((image.width, image.height)), dtype=float)
    shown = np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"), dtype=float)
    wrong = np.asarray(original.crop((x0, y0, x1, y1)).resize((image.width, image.height)), dtype=float)
    assert np.abs(shown - expected).mean() < 12 < np.abs(shown - wrong).mean()


def test_a_plot_comes_from_no_input(session):
    run = session.run("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('a plot')")
    assert run.ok and len(run.images) == 1
    assert run.images[0].source is None


@pytest.mark.parametrize("box, size", [((150, 80, 350, 230), (300, 225)),  # zoomed
                                       ((400, 250, 600, 400), (200, 150))])  # as it is: a smooth patch of sky
def test_an_image_the_sandbox_cannot_follow_is_matched_on_the_host(session, box, size):
    # Decoded from bytes, not opened from the input file: nothing to track.
    run = session.run("import io\nfrom PIL import Image\nraw = open('photo.jpg', 'rb').read()\n"
                      f"im = Image.open(io.BytesIO(raw))\ndisplay(im.crop({box}).resize({size}))")
    image, source = only_source(run)
    assert source.how == "matched" and source.input == "photo.jpg" and 0.9 <= source.score <= 1.0
    ok, why = near(source.box, list(box), slack=4)
    assert ok, why


# -- surfaced: the library's steps and the trace's evidence map ---------------------------


def test_the_trace_draws_every_region_on_its_input_and_links_it_to_its_step(tmp_path):
    from agentic_vision import Agent
    from agentic_vision.testing import ScriptedModel, call
    from agentic_vision.trace import render_trace

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(sample("rocket.jpg").read_bytes())
    model = ScriptedModel([
        call("from PIL import Image\nim = Image.open('photo.jpg')\ndisplay(im.crop((100, 50, 300, 200)))"),
        call("display(im.rotate(30, expand=True).crop((250, 300, 410, 420)))\n"
             "import matplotlib.pyplot as plt\nplt.plot([1, 2])"),
        "A rocket.",
    ])
    result = Agent(model=model, sandbox="local").run("What is it?", images=[photo])
    model.assert_complete()
    first, second = result.steps
    assert first.images[0].source.box == (100, 50, 300, 200)
    assert second.images[0].source.angle == pytest.approx(-30, abs=0.5) and second.images[1].source is None
    assert result.input_sizes == {"photo.jpg": (640, 427)}
    assert result.as_dict()["steps"][0]["images"][0]["source"]["box"] == [100, 50, 300, 200]

    html = render_trace(result)
    card = html[html.index("Where the model looked"):html.index("</section>", html.index("Where the model looked"))]
    assert '<svg viewBox="0 0 640 427"' in card  # drawn in the input's full-resolution pixels
    assert card.count("<rect ") == 2  # the plot is on no input
    assert '<a href="#step-1"><title>step 1 image 1: photo.jpg [100, 50, 300, 200]</title>' in card
    assert 'x="100" y="50" width="200" height="150"' in card
    assert '<a href="#step-2">' in card and 'transform="rotate(30 ' in card  # turned back clockwise on screen
    assert 'id="step-1"' in html and 'id="step-2"' in html  # the links' targets
    assert '<div class="from">from photo.jpg [100, 50, 300, 200]</div>' in html
    assert html.count('<div class="from">') == 2


def test_a_trace_without_regions_has_no_evidence_map(tmp_path):
    from agentic_vision import Agent
    from agentic_vision.testing import ScriptedModel, call
    from agentic_vision.trace import render_trace

    model = ScriptedModel([call("import matplotlib.pyplot as plt\nplt.plot([1, 2])"), "Done."])
    result = Agent(model=model, sandbox="local").run("Plot it.")
    assert result.steps[0].images[0].source is None
    assert "Where the model looked" not in render_trace(result)


# -- hostile provenance from a hostile runtime ----------------------------------------------

from host_effects import HostEffects, check_effects, serving  # noqa: E402
from test_attacks_channel import HOSTILE_SESSION  # noqa: E402


@pytest.fixture
def hostile_with_photo(sandbox_kind, tmp_path):
    from agentic_vision import open_session

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(sample("rocket.jpg").read_bytes())
    session = open_session(sandbox_kind, inputs=[photo], **HOSTILE_SESSION)
    yield session
    session.close()


def test_forged_sources_are_refused_or_clipped_and_the_images_kept(hostile_with_photo):
    session = hostile_with_photo
    before = serving(session)
    with HostEffects() as effects:
        result = session.run("forged sources")
    assert result.ok, result.output
    sources = [image.source for image in result.images]
    assert len(sources) == 10  # every image kept: a bad source is dropped, not the image
    # huge, negative (entirely off the input), NaN, infinite, an input that does not
    # exist, a path, a 100 000-character name, a "matched" claim, a turned box off the input
    assert sources[:9] == [None] * 9
    clipped = sources[9]  # partly off the input: clipped to it
    assert clipped.input == "photo.jpg" and clipped.box == (0, 0, 100, 120) and clipped.how == "tracked"
    check_effects(effects.facts)
    assert serving(session) == before  # no violation: the same sandbox goes on
    assert session.run("print(1)").output == "1\n"


def test_a_source_too_big_to_parse_cheaply_is_a_violation(hostile_with_photo):
    session = hostile_with_photo
    with HostEffects() as effects:
        result = session.run("a source of 100000 numbers")
    assert result.outcome == "OUTCOME_FAILED" and not result.images
    assert "The sandbox sent an invalid message" in result.output
    check_effects(effects.facts)
    assert session.run("print(1)").output == "1\n"


def test_host_matching_is_optional_without_opencv(monkeypatch):
    from agentic_vision.images import check_output_image
    from agentic_vision.provenance import Provenance
    from agentic_vision.sandboxing.session import InputFile

    data = sample("rocket.jpg").read_bytes()
    crop = Image.open(io.BytesIO(data)).crop((300, 100, 420, 220))
    buf = io.BytesIO()
    crop.save(buf, "PNG")
    shown = check_output_image(buf.getvalue(), "image/png")
    [found] = Provenance([InputFile("photo.jpg", data)]).sources([{}], [shown])
    assert found is not None and found.how == "matched"
    ok, why = near(found.box, [300, 100, 420, 220])
    assert ok, why
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    assert Provenance([InputFile("photo.jpg", data)]).sources([{}], [shown]) == [None]


def test_a_browser_draws_the_region_where_it_is_in_the_input(tmp_path):
    """The evidence map as Chromium draws it: the region's outline lands on the input's pixels."""
    import shutil
    import subprocess

    from agentic_vision.evidence import CSS, evidence_map
    from agentic_vision.loop.result import AgentResult, Step, Turn
    from agentic_vision.models.base import ModelImage
    from agentic_vision.values import Image as Shown, Outcome, Source, StopReason

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(chromium, "Chromium (apt-get install chromium; scripts/test.sh installs it)")
    coins = Image.open(sample("coins.png")).convert("RGB")  # grey coins: no orange in it
    full = coins.resize((768, 606))  # the original; the page shows the model's half-size copy
    buf = io.BytesIO()
    coins.save(buf, "PNG")
    step = Step("crop", Outcome.OK, "", [Shown(b"", "image/png", 10, 10, Source("coins.png", (200, 100, 600, 400)))])
    result = AgentResult("q", "a", StopReason.ANSWERED, "m", "local", inputs=[
        ModelImage(buf.getvalue(), "image/png", 384, 303, "coins.png")], input_sizes={"coins.png": full.size})
    result.turns = [Turn(steps=[step])]
    card = evidence_map(result)
    emap = card[card.index('<div class="emap">'):card.rindex("</div>") + 6]
    page = tmp_path / "map.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>:root{{--line:#fff}} body{{margin:0}}"
                    f"{CSS}</style></head><body>{emap}</body></html>")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=500,400", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    orange = np.abs(pixels - np.array([0xFF, 0x6A, 0x00])).sum(axis=2) < 60
    ys, xs = np.nonzero(orange)
    # (200, 100)-(600, 400) of the 768x606 original is (100, 50)-(300, 200) on the 384x303 copy,
    # which sits 1 px in (its border) and 6 px down (the map's top margin).
    assert abs(xs.min() - 101) <= 3 and abs(xs.max() - 301) <= 3
    assert abs(ys.min() - 57) <= 3 and abs(ys.max() - 207) <= 3


def test_a_mangled_map_costs_the_source_not_the_image(open_sandbox, tmp_path):
    # Without the guard model code can reach the attribute the tracking keeps: junk
    # there must not turn display() into an error.
    path = tmp_path / "photo.jpg"
    path.write_bytes(sample("rocket.jpg").read_bytes())
    session = open_sandbox(inputs=[path], guard=False)
    run = session.run("from PIL import Image\nim = Image.open('photo.jpg').crop((200, 100, 400, 250))\n"
                      "im._agentic_vision_source = ('photo.jpg', 'junk', None)\ndisplay(im)")
    assert run.ok, run.output
    [image] = run.images
    assert image.source is None or image.source.how == "matched"  # never the junk, maybe found by the host
