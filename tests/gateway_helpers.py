"""What the gateway tests share: a gateway in front of a scripted upstream, real images."""

from __future__ import annotations

import contextlib
import http.client
import json
from urllib.parse import urlsplit

from agentic_vision.servers.gateway import BackgroundGateway, GatewayConfig
from agentic_vision.testing.gemini_server import ScriptedGemini

from conftest import sample

MODEL = "gemini-3-flash-preview"
# Code a model would write for "zoom into the top-left quarter": real PIL in the real sandbox.
CROP = (
    "from PIL import Image\n"
    "im = Image.open('image-1.png')\n"
    "print(im.size)\n"
    "crop = im.crop((0, 0, im.width // 2, im.height // 2))\n"
    "display(crop)\n"
)


def image_bytes(name: str = "coffee.png") -> bytes:
    return sample(name).read_bytes()


@contextlib.contextmanager
def gateway(upstream=None, **settings):
    """A gateway on a free port; its upstream is the scripted server ``upstream`` -- or, where a test
    names none, a scripted server with an empty script, never the real Gemini API (the default)."""
    settings.setdefault("sandbox", "local")
    settings.setdefault("upstream_key", None)  # forward the client's key, unless a test says otherwise
    with contextlib.ExitStack() as stack:
        if upstream is None and "upstream_url" not in settings:
            upstream = stack.enter_context(ScriptedGemini([]))
        if upstream is not None:
            settings.setdefault("upstream_url", upstream.url)
        yield stack.enter_context(BackgroundGateway(GatewayConfig(**settings)))


def raw_request(url: str, method: str, path: str, body: bytes | dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One plain HTTP request (no SDK): status, headers (lower-case), body bytes."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"content-type": "application/json", **(headers or {})}
    conn.request(method, path, body=data, headers=sent)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
