"""From what the user names to what the sandbox and the model get.

Images may be paths, folders (their images and PDFs, sorted), http(s) URLs,
PDFs (rendered page by page), bytes, ``(name, bytes)`` or PIL images; files
(``files=``/``--file``) are paths, URLs or ``(name, bytes)``, put in the
working directory as they are.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from PIL import Image as PILImage

from ..errors import InputError
from ..images import sniff_image
from ..sandboxing.session import InputFile, load_inputs
from .images import DEFAULT_MAX_PIXELS, PreparedImage, prepare_image
from .pdf import is_pdf, render_pdf
from .urls import MAX_BYTES, TIMEOUT, fetch, is_url

FOLDER_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".tif", ".tiff", ".bmp", ".pdf"}
MAX_FOLDER_FILES = 32


@dataclass
class Inputs:
    images: list[PreparedImage] = field(default_factory=list)  # what the model sees (pages included)
    files: list[InputFile] = field(default_factory=list)  # everything for the working directory
    notes: dict[str, str] = field(default_factory=dict)  # file name -> what it is, for the listing
    messages: list[str] = field(default_factory=list)  # said to the model with the question
    skipped: list[str] = field(default_factory=list)  # folder files left out, for the user: "skipped /a/b.jpg: ..."
    unnamed: int = 0  # how many unnamed inputs (bytes, PIL images) are named so far: image-1, image-2...


@dataclass
class InputOptions:
    max_side: int = 1536
    max_pixels: int = DEFAULT_MAX_PIXELS
    pages: str | int | None = None  # PDF pages: "3", "2-5", "1,3"; None: the first few
    max_download_bytes: int = MAX_BYTES
    download_timeout: float = TIMEOUT
    stop: threading.Event | None = None  # set: stop rendering (the request was cancelled)


@dataclass
class FolderFile:
    """A file a folder gave: unlike a file named on its own, it is skipped (with a note) when
    it cannot be read, as long as something usable remains."""

    path: Path


def expand_folders(sources: Iterable, notes: list[str] | None = None) -> list:
    """Folders replaced by their images and PDFs (sorted by name, not recursive), each as a
    FolderFile; other files are left out, with one note per folder in ``notes``."""
    out = []
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and not is_url(source) and Path(source).is_dir():
            files = sorted(p for p in Path(source).iterdir() if p.is_file() and not p.name.startswith("."))
            found = [p for p in files if p.suffix.lower() in FOLDER_SUFFIXES]
            if not found:
                raise InputError(f"no images or PDFs in the folder {source}")
            if len(found) > MAX_FOLDER_FILES:
                raise InputError(f"the folder {source} has {len(found)} images; at most {MAX_FOLDER_FILES} "
                                 "go to the model at once: pick some")
            others = [p.name for p in files if p not in found]
            if others and notes is not None:
                shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                notes.append(f"skipped {len(others)} file{'s' if len(others) != 1 else ''} in {Path(source).resolve()} "
                             f"that {'are' if len(others) != 1 else 'is'} not an image or a PDF: {shown}")
            out.extend(FolderFile(p) for p in found)
        else:
            out.append(source)
    return out


def _bytes_of(source, options: InputOptions) -> tuple[str | None, object, str]:
    """(name, source for prepare_image, content type) with URLs fetched and paths read."""
    if isinstance(source, tuple):
        if len(source) != 2 or not isinstance(source[0], str) or not isinstance(source[1], (bytes, bytearray)):
            raise InputError(f"an image given as a pair must be (file name, bytes), not {_shown(source)}")
        return source[0], source[1], ""
    if is_url(source):
        name, data, ctype = fetch(source, options.max_download_bytes, options.download_timeout)
        if not (sniff_image(data) or is_pdf(data)) and (ctype.startswith("text/") or "html" in ctype):
            raise InputError(f"{source} is not an image or a PDF (it sent {ctype or 'no content type'})")
        return name, data, ctype
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"image not found: {path}")
        return path.name, path.read_bytes(), ""
    if isinstance(source, (bytes, bytearray, PILImage.Image)):
        return None, source, ""
    raise InputError("an image must be a path, a folder, a URL, bytes, a (name, bytes) pair or a PIL image, "
                     f"not {_shown(source)}")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reason(message: str, name: str) -> str:
    """An input's one-line error without the file name it starts with (the note names the path)."""
    if message.startswith(name):
        message = message[len(name):].lstrip(" :")
        return message[3:] if message.startswith("is ") else message
    return message


def _add_image(result: Inputs, name: str, data, options: InputOptions) -> None:
    """One image or PDF into ``result``: the model's view, the sandbox's file, the listing's note."""
    if isinstance(data, (bytes, bytearray)) and is_pdf(bytes(data)):
        pdf_name = name if name.lower().endswith(".pdf") else f"{name}.pdf"
        rendered = render_pdf(bytes(data), pdf_name, options.pages, options.max_side, options.max_pixels,
                              stop=options.stop)
        result.files.append(InputFile(pdf_name, bytes(data)))
        result.notes[pdf_name] = f"PDF, {rendered.page_count} page{'s' if rendered.page_count != 1 else ''}"
        for page in rendered.pages:
            result.images.append(page)
            result.files.append(InputFile(page.name, page.sandbox_data))
            result.notes[page.name] = f"{page.width}x{page.height} image, {page.note}"
        result.messages.append(rendered.note)
        return
    prepared = prepare_image(data, name=name, max_side=options.max_side, max_pixels=options.max_pixels)
    result.images.append(prepared)
    result.files.append(InputFile(prepared.name, prepared.sandbox_data))
    result.notes[prepared.name] = f"{prepared.width}x{prepared.height} image"


def prepare_inputs(images: Iterable = (), files: Iterable = (), options: InputOptions | None = None,
                   unnamed_start: int = 0) -> Inputs:
    """Every input checked, fetched, rendered; InputError (one line) for the first that is not usable."""
    options = options or InputOptions()
    result = Inputs()
    unnamed = unnamed_start
    sources = expand_folders(images, result.skipped)
    for source in sources:
        if isinstance(source, FolderFile):
            try:
                _add_image(result, source.path.name, source.path.read_bytes(), options)
            except (InputError, OSError) as exc:  # one bad file in a folder does not stop the rest
                why = exc if isinstance(exc, InputError) else f"{source.path.name}: {exc.strerror}"
                result.skipped.append(f"skipped {source.path.resolve()}: {_reason(str(why), source.path.name)}")
            continue
        name, data, _ = _bytes_of(source, options)
        if name is None:
            unnamed += 1  # bytes or a PIL image: give it a name the code can open
            name = f"image-{unnamed}"
        _add_image(result, name, data, options)
    if sources and not result.images:
        raise InputError(f"no usable image: {'; '.join(result.skipped)}")
    specs = []
    for spec in files:
        if is_url(spec):
            name, data, _ = fetch(spec, options.max_download_bytes, options.download_timeout)
            specs.append((name, data))
        else:
            specs.append(spec)
    result.files.extend(load_inputs(specs))
    result.unnamed = unnamed
    names = [f.name for f in result.files]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InputError(f"two inputs are named {duplicate!r}; rename one")
    return result
