"""Inputs given as http(s) URLs, fetched on the host (the sandbox has no network).

Streamed with a size cap and timeouts; what comes back must be an image or
a PDF (by its bytes, whatever the Content-Type says) when it is to be one.
Every failure is one line that names the URL.
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote, urlsplit

import httpx2

from ..errors import InputError

MAX_BYTES = 200 * 1024 * 1024
TIMEOUT = 30.0  # seconds to connect, and between bytes; the whole download gets four times that
_URL = re.compile(r"^https?://", re.I)


def is_url(source) -> bool:
    return isinstance(source, str) and bool(_URL.match(source))


def name_for(url: str) -> str:
    """A plain file name from the URL's path ("photo.jpg"), or "download"."""
    base = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base[:100] or "download"


def fetch(url: str, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) of ``url``; InputError with one line otherwise."""
    deadline = time.monotonic() + 4 * timeout
    limit = f"{max_bytes / 2**20:.0f} MiB" if max_bytes >= 2**20 else f"{max_bytes} bytes"
    try:
        with httpx2.stream("GET", url, follow_redirects=True, timeout=httpx2.Timeout(timeout),
                           headers={"User-Agent": "agentic-vision"}) as response:
            if response.status_code >= 400:
                raise InputError(f"{url} answered {response.status_code} {response.reason_phrase}".rstrip())
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise InputError(f"{url} is {int(length) / 2**20:.0f} MiB, over the limit of {limit}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise InputError(f"{url} is larger than the limit of {limit}")
                if time.monotonic() > deadline:
                    raise InputError(f"{url} took longer than {4 * timeout:g} s to download")
                chunks.append(chunk)
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            final = str(response.url)
    except InputError:
        raise
    except httpx2.TimeoutException:
        raise InputError(f"{url} did not answer within {timeout:g} s") from None
    except httpx2.HTTPError as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"cannot fetch {url}: {detail}") from None
    return name_for(final), b"".join(chunks), ctype
