"""--auth-token: every HTTP request to the server carries ``Authorization: Bearer TOKEN``.

The token admits a client to the server; it does not tell clients apart (their
sessions stay apart by connection, see ``sessions``).
"""

from __future__ import annotations

import hashlib
import json
import secrets

from ...errors import InputError
from ..binding import is_loopback

MIN_TOKEN_CHARS = 16
SDK_LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the names the SDK guards against DNS rebinding itself



def check_auth(host: str, token: str | None) -> None:
    """Refuses, in one line, a token that cannot work or a non-loopback address without one."""
    if token is not None:
        if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable() or " " in token:
            raise InputError(
                f"--auth-token (AGENTIC_VISION_AUTH_TOKEN) must be at least {MIN_TOKEN_CHARS} printable ASCII "
                "characters without spaces, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    elif not is_loopback(host):
        raise InputError(
            f"refusing to listen on {host} without --auth-token: anyone who can reach it could run code in its "
            "sandboxes and read its --allow-dir files (use --auth-token TOKEN or AGENTIC_VISION_AUTH_TOKEN, "
            "or a loopback --host)")


def _digest(value: bytes) -> bytes:
    # Both sides hashed first: the comparison takes the same time whatever the length sent.
    return hashlib.sha256(value).digest()


class BearerAuth:
    """ASGI middleware: 401 for any HTTP request without the right bearer token."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self._expected = _digest(token.encode("ascii"))

    def _allowed(self, headers) -> bool:
        values = [v for k, v in headers if k == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, credentials = values[0].partition(b" ")
        matches = secrets.compare_digest(_digest(credentials.strip()), self._expected)
        return scheme.lower() == b"bearer" and matches

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self._allowed(scope.get("headers", ())):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "this server needs Authorization: Bearer TOKEN "
                                    "(the token it was started with, --auth-token)"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="agentic-vision mcp"')]})
        await send({"type": "http.response.body", "body": body})
