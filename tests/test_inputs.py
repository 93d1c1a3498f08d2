"""Input images: every format the user may have reaches the model in a form the API accepts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from agentic_vision import Agent, InputError
from agentic_vision.inputs import prepare_image
from agentic_vision.models.gemini import GeminiModel
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample


def photo() -> Image.Image:
    return Image.open(sample("rocket.jpg")).convert("RGB")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def variants() -> dict[str, bytes]:
    rgb = photo()
    coins = Image.open(sample("coins.png"))
    sixteen = Image.fromarray(np.asarray(coins, dtype=np.uint16) * 257)
    assert sixteen.mode == "I;16"
    rgba = rgb.copy()
    rgba.putalpha(128)
    return {
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG"),
        "sixteen.png": encode(sixteen, "PNG"),
        "palette.png": encode(rgb.convert("P", palette=Image.ADAPTIVE), "PNG"),
        "alpha.png": encode(rgba, "PNG"),
        "anim.gif": sample("no_time_for_that_tiny.gif").read_bytes(),
        "photo.tif": encode(rgb, "TIFF"),
        "photo.bmp": encode(rgb, "BMP"),
        "photo.webp": encode(rgb, "WEBP"),
        "grey.png": sample("camera.png").read_bytes(),
    }


@pytest.mark.parametrize("name", sorted(variants()))
def test_every_format_becomes_an_api_image(name):
    data = variants()[name]
    prepared = prepare_image(data, name=name, max_side=256)
    assert prepared.sandbox_data == data  # the sandbox keeps the original bytes
    assert prepared.model.mime_type in ("image/png", "image/jpeg")
    with Image.open(io.BytesIO(prepared.model.data)) as img:
        assert img.mode in ("RGB", "RGBA", "L")
        assert max(img.size) <= 256
        assert img.size == (prepared.model.width, prepared.model.height)


def test_exif_orientation_is_applied_for_the_model_and_the_sandbox():
    img = photo()  # 640x427 landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    data = encode(img, "JPEG", exif=exif.tobytes())
    prepared = prepare_image(data, name="phone.jpg", max_side=2000)
    assert (prepared.width, prepared.height) == (427, 640)
    assert (prepared.model.width, prepared.model.height) == (427, 640)
    with Image.open(io.BytesIO(prepared.sandbox_data)) as upright:
        assert upright.size == (427, 640)


def test_large_images_are_downscaled_for_the_model_only():
    big = photo().resize((4000, 2669))
    prepared = prepare_image(encode(big, "JPEG"), name="big.jpg", max_side=1536)
    assert (prepared.model.width, prepared.model.height) == (1536, 1025)
    with Image.open(io.BytesIO(prepared.sandbox_data)) as original:
        assert original.size == (4000, 2669)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"just some text, not an image", "is not a readable image"),
        (sample("coins.png").read_bytes()[:2000], "is not a readable image"),  # truncated
    ],
)
def test_bad_inputs_are_refused_with_one_line(data, message):
    with pytest.raises(InputError) as info:
        prepare_image(data, name="bad.png")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_decompression_bomb_is_refused_before_decoding():
    from large_images import png_claiming

    bomb = png_claiming(60000, 60000)  # 3600 megapixels in a few hundred bytes
    assert len(bomb) < 1000
    with pytest.raises(InputError) as info:
        prepare_image(bomb, name="bomb.png")
    message = str(info.value)
    assert "60000x60000" in message and "--max-pixels" in message and "max_pixels=" in message
    assert "\n" not in message


def test_a_missing_file_is_refused():
    with pytest.raises(InputError, match="image not found"):
        prepare_image("/nonexistent/photo.jpg")


def test_converted_inputs_are_accepted_by_the_strict_server(tmp_path):
    """The scripted server checks every image's bytes against its MIME type."""
    paths = []
    for name, data in variants().items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    unnamed = [photo(), sample("coins.png").read_bytes()]  # a PIL image and bare bytes get names
    script = [reply.call("run_python", {"code": "import os\nprint(sorted(os.listdir('.')))"}),
              lambda request: reply.text(request.function_responses()[-1]["response"]["output"])]
    with ScriptedGemini(script) as server:
        gemini = GeminiModel("gemini-3-flash-preview", api_key="k", base_url=server.url, retries=0)
        result = Agent(model=gemini, sandbox="local").run("What are these?", images=paths + unnamed)
    assert len(server.requests[0].images()) == 11
    listed = eval(result.answer)
    assert set(variants()) < set(listed) and {"image-1.png", "image-2.png"} <= set(listed)


@pytest.mark.parametrize("fmt", ["PCX", "SGI", "TGA", "EPS"])
def test_formats_beyond_the_common_ones_are_not_decoded(fmt):
    # PIL would decode these (EPS through Ghostscript, where it is installed): none is opened for a client.
    data = encode(photo().resize((64, 48)), fmt)
    with pytest.raises(InputError) as info:
        prepare_image(data, name=f"photo.{fmt.lower()}")
    message = str(info.value)
    assert message.startswith(f"photo.{fmt.lower()} is not a readable image in a format taken here")
    assert "\n" not in message
