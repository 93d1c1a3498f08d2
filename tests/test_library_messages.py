"""What the library says when it is used wrongly: one line for the person who wrote the call,
in the library's words (not an internal function's, not a decoder's exception class)."""

from __future__ import annotations

import pytest

from agentic_vision import Agent
from agentic_vision.errors import InputError
from agentic_vision.inputs.sources import prepare_inputs
from conftest import sample


@pytest.mark.parametrize("images, message", [
    ([123], "an image must be a path, a folder, a URL, bytes, a (name, bytes) pair or a PIL image, not 123"),
    ([("photo.png", 5)], "an image given as a pair must be (file name, bytes), not ('photo.png', 5)"),
])
def test_an_image_of_the_wrong_type_is_one_line(images, message):
    with pytest.raises(InputError) as caught:
        prepare_inputs(images)
    assert str(caught.value) == message


def test_one_path_is_one_image_not_one_per_character():
    chat = Agent(model="gemini-3-flash-preview").chat()
    assert [p.name for p in chat._prepare(str(sample("coins.png")), []).images] == ["coins.png"]


def test_a_misspelt_setting_is_named_with_its_fix():
    with pytest.raises(TypeError) as caught:
        Agent(model="gemini-3-flash-preview", max_stepz=3)
    assert str(caught.value) == "Agent() has no setting 'max_stepz': did you mean max_steps?"


def test_a_model_name_without_its_prefix_is_explained_in_the_librarys_words():
    with pytest.raises(InputError) as caught:
        Agent(model="gpt-4o")
    assert str(caught.value) == ("'gpt-4o' looks like an OpenAI model, and names without a prefix go to Gemini: "
                                 "write openai:gpt-4o (with OPENAI_API_KEY, or model_options={'base_url': URL} "
                                 "for another server)")


@pytest.mark.parametrize("name, content, message", [
    ("cut.png", lambda: sample("coins.png").read_bytes()[:3000],
     "cut.png is not a readable image: the file is cut short; check the file"),
    ("notes.png", lambda: b"just some words, not pixels",
     "notes.png is not a readable image in a format taken here (JPEG, PNG, GIF, WEBP, TIFF, BMP, or a PDF): "
     "convert it to one of those"),
    ("plan.pdf", lambda: b"%PDF-1.4\nnot really a PDF\n",
     "plan.pdf is not a readable PDF: it is damaged or not a PDF; check the file"),
])
def test_unreadable_files_are_described_without_exception_names(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(InputError) as caught:
        prepare_inputs([str(path)])
    assert str(caught.value) == message


def test_a_folder_skips_what_it_cannot_read_and_names_it(tmp_path):
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    (tmp_path / "notes.txt").write_text("shopping list")
    inputs = prepare_inputs([str(tmp_path)])
    assert [p.name for p in inputs.images] == ["coins.png"]
    assert inputs.skipped == [
        f"skipped 1 file in {tmp_path} that is not an image or a PDF: notes.txt",
        f"skipped {tmp_path / 'broken.jpg'}: not a readable image: the file is cut short; check the file",
    ]
    (tmp_path / "coins.png").unlink()
    with pytest.raises(InputError) as caught:  # nothing usable left: that is an error
        prepare_inputs([str(tmp_path)])
    assert str(caught.value).startswith(f"no usable image: skipped 1 file in {tmp_path} ")
