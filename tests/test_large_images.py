"""Photos of 100+ megapixels: accepted on the host and inside the sandbox, with one
setting for the limit; what the code shows comes back even when it is large."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from agentic_vision import InputError
from agentic_vision.inputs import prepare_image
from large_images import HEIGHT, WIDTH, big_jpeg, big_png, png_claiming


@pytest.mark.parametrize("make", [big_jpeg, big_png], ids=["jpeg", "png"])
def test_a_108_megapixel_image_is_accepted_and_the_model_gets_a_small_view(make):
    path = make()
    prepared = prepare_image(path, max_side=1536)
    assert (prepared.width, prepared.height) == (WIDTH, HEIGHT)
    assert prepared.sandbox_data == path.read_bytes()  # the sandbox gets the original
    assert (prepared.model.width, prepared.model.height) == (1536, 1152)
    with Image.open(io.BytesIO(prepared.model.data)) as view:
        assert view.size == (1536, 1152)


def test_over_the_limit_is_one_line_that_names_the_setting():
    with pytest.raises(InputError) as info:
        prepare_image(big_jpeg(), max_pixels=50_000_000)
    message = str(info.value)
    assert message.startswith("big.jpg is 12000x9000 pixels (108 MP), over the limit of 50 MP")
    assert "--max-pixels" in message and "\n" not in message
    assert prepare_image(big_jpeg(), max_pixels=120_000_000).width == WIDTH  # raised, it passes


def test_a_header_that_claims_a_bomb_is_refused_whatever_the_format_says():
    with pytest.raises(InputError, match=r"60000x60000 pixels \(3600 MP\)"):
        prepare_image(png_claiming(60000, 60000), name="bomb.png")


def test_the_sandbox_opens_a_108_megapixel_input(open_sandbox):
    session = open_sandbox(inputs=[big_jpeg()])
    run = session.run("from PIL import Image\nim = Image.open('big.jpg')\nprint(im.size)\n"
                      "im.crop((11000, 8400, 12000, 9000)).show()")
    assert run.ok, run.output
    assert "(12000, 9000)" in run.output
    assert [(im.width, im.height) for im in run.images] == [(1000, 600)]


def test_the_sandbox_limit_is_the_hosts_setting(open_sandbox):
    session = open_sandbox(inputs=[big_jpeg()], max_pixels=50_000_000)
    run = session.run("from PIL import Image\nImage.open('big.jpg')")
    assert run.outcome == "OUTCOME_FAILED"
    assert "DecompressionBomb" in run.output


def test_a_large_crop_the_code_shows_comes_back_with_a_note(open_sandbox):
    session = open_sandbox(inputs=[big_jpeg()])
    run = session.run("from PIL import Image\nImage.open('big.jpg').crop((0, 0, 4500, 3300)).show()")
    assert run.ok, run.output
    [image] = run.images  # a 45 MB PNG is over the 20 MiB limit: it comes back as JPEG, full size
    assert (image.width, image.height) == (4500, 3300) and image.mime_type == "image/jpeg"
    assert "comes back as JPEG at full size" in run.output


def test_an_image_over_the_return_pixel_limit_is_downscaled_not_dropped(open_sandbox):
    session = open_sandbox()
    run = session.run("from PIL import Image\nImage.new('RGB', (10000, 8000), 'navy').show()")
    assert run.ok, run.output
    [image] = run.images
    assert image.width * image.height <= 64_000_000 and abs(image.width / image.height - 1.25) < 0.01
    assert "10000x8000" in run.output and "downscaled" in run.output
