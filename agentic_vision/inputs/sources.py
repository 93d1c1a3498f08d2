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
    unnamed: int = 0  # how many unnamed inputs (bytes, PIL images) are named so far: image-1, image-2...


@dataclass
class InputOptions:
    max_side: int = 1536
    max_pixels: int = DEFAULT_MAX_PIXELS
    pages: str | int | None = None  # PDF pages: "3", "2-5", "1,3"; None: the first few
    max_download_bytes: int = MAX_BYTES
    download_timeout: float = TIMEOUT
    stop: threading.Event | None = None  # set: stop rendering (the request was cancelled)


def expand_folders(sources: Iterable) -> list:
    """Folders replaced by their images and PDFs (sorted by name, not recursive)."""
    out = []
    for source in sources:
        if isinstance(source, (str, os.PathLike)) and not is_url(source) and Path(source).is_dir():
            found = sorted(p for p in Path(source).iterdir() if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
            if not found:
                raise InputError(f"no images or PDFs in the folder {source}")
            if len(found) > MAX_FOLDER_FILES:
                raise InputError(f"the folder {source} has {len(found)} images; at most {MAX_FOLDER_FILES} "
                                 "go to the model at once: pick some")
            out.extend(found)
        else:
            out.append(source)
    return out


def _bytes_of(source, options: InputOptions) -> tuple[str | None, object, str]:
    """(name, source for prepare_image, content type) with URLs fetched and paths read."""
    if isinstance(source, tuple):
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
    return None, source, ""


def prepare_inputs(images: Iterable = (), files: Iterable = (), options: InputOptions | None = None,
                   unnamed_start: int = 0) -> Inputs:
    """Every input checked, fetched, rendered; InputError (one line) for the first that is not usable."""
    options = options or InputOptions()
    result = Inputs()
    unnamed = unnamed_start
    for source in expand_folders(images):
        name, data, _ = _bytes_of(source, options)
        if name is None:
            unnamed += 1  # bytes or a PIL image: give it a name the code can open
            name = f"image-{unnamed}"
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
            continue
        prepared = prepare_image(data, name=name, max_side=options.max_side, max_pixels=options.max_pixels)
        result.images.append(prepared)
        result.files.append(InputFile(prepared.name, prepared.sandbox_data))
        result.notes[prepared.name] = f"{prepared.width}x{prepared.height} image"
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
