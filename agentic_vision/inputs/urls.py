"""Inputs given as http(s) URLs, fetched on the host (the sandbox has no network).

Streamed with a size cap and timeouts; what comes back must be an image or
a PDF (by its bytes, whatever the Content-Type says) when it is to be one.
The whole download, redirects included, has a deadline held by a timer that
shuts the connection's socket down when it passes, so a server that sends a
byte and stalls (or trickles its headers) is cut off then, not when its next
byte comes.  Redirects are followed by hand: only to http(s), at most
``MAX_REDIRECTS``, each answer checked against the size cap; the file name
comes from the final URL.  Every failure is one line that names the URL.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from urllib.parse import unquote, urljoin, urlsplit

import httpx2

from ..errors import InputError

MAX_BYTES = 200 * 1024 * 1024
TIMEOUT = 30.0  # seconds to connect, and between bytes; the whole download gets four times that
MAX_REDIRECTS = 10
_URL = re.compile(r"^https?://", re.I)


def is_url(source) -> bool:
    return isinstance(source, str) and bool(_URL.match(source))


def name_for(url: str) -> str:
    """A plain file name from the URL's path ("photo.jpg"), or "download"."""
    base = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return base[:100] or "download"


class _Deadline:
    """Shuts down every socket of a download once ``seconds`` have passed (httpcore's
    trace hook hands each new connection over as it is made)."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="download-deadline", daemon=True).start()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def trace(self, event: str, info: dict) -> None:
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with self._lock:
                    self._sockets.append(sock)
                    if self.fired:
                        self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read at once (close would not)
        except OSError:
            pass

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self.remaining())):
            return
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    def stop(self) -> None:
        self._done.set()


def fetch(url: str, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT) -> tuple[str, bytes, str]:
    """(file name from the final URL, bytes, content type) of ``url``; InputError with one line otherwise."""
    total = 4 * timeout
    deadline = _Deadline(total)
    late = InputError(f"{url} took longer than {total:g} s to download")
    try:
        with httpx2.Client(follow_redirects=False, headers={"User-Agent": "agentic-vision"}) as client:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                if deadline.remaining() <= 0:
                    raise late
                request = client.build_request("GET", current, timeout=httpx2.Timeout(min(timeout, deadline.remaining())),
                                               extensions={"trace": deadline.trace})
                response = client.send(request, stream=True)
                try:
                    if response.is_redirect and response.headers.get("location"):
                        current = _redirect(url, current, response.headers["location"])
                        continue
                    return name_for(current), *_body(url, response, max_bytes, deadline, late)
                finally:
                    response.close()
            raise InputError(f"{url} redirects more than {MAX_REDIRECTS} times")
    except InputError:
        raise
    except httpx2.TimeoutException:
        if deadline.fired or deadline.remaining() <= 0:
            raise late from None
        raise InputError(f"{url} did not answer within {timeout:g} s") from None
    except httpx2.HTTPError as exc:
        if deadline.fired:
            raise late from None
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"cannot fetch {url}: {detail}") from None
    finally:
        deadline.stop()


def _redirect(url: str, current: str, location: str) -> str:
    target = urljoin(current, location)
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError(f"{url} redirects to a {scheme or 'relative'}: URL ({target[:100]}); only http(s) "
                         "redirects are followed")
    return target


def _body(url: str, response, max_bytes: int, deadline: _Deadline, late: InputError) -> tuple[bytes, str]:
    limit = f"{max_bytes / 2**20:.0f} MiB" if max_bytes >= 2**20 else f"{max_bytes} bytes"
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
        if deadline.fired:
            raise late
        chunks.append(chunk)
    if deadline.fired:
        raise late
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return b"".join(chunks), ctype
