"""Requests the gateway does not run itself go to the upstream Gemini API as they came.

Only the API key changes (the gateway's own, or the client's forwarded) and
``fileData`` that names a file uploaded here becomes ``inlineData``, since the
upstream has never seen that file.  Streams are relayed chunk by chunk.
"""

from __future__ import annotations

import json
from typing import Callable

import httpx2 as httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from .errors import GatewayError
from .wire import b64

_KEEP_HEADERS = ("content-type",)


class Upstream:
    def __init__(self, base_url: str, key_for: Callable[[str | None], str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_for = key_for  # client's key -> the key to send upstream (raises GatewayError)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0))
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def forward(self, method: str, path: str, query: list[tuple[str, str]], body: bytes | None,
                      client_key: str | None) -> Response:
        """``path`` like ``v1beta/models/m:generateContent``; ``query`` without the key."""
        headers = {"x-goog-api-key": self.key_for(client_key)}
        if body is not None:
            headers["content-type"] = "application/json"
        request = self.client.build_request(method, f"{self.base_url}/{path}", params=query, content=body,
                                            headers=headers)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise GatewayError(502, f"cannot reach the upstream Gemini API at {self.base_url}: "
                               f"{type(exc).__name__}") from None
        kept = {k: v for k, v in response.headers.items() if k.lower() in _KEEP_HEADERS}
        # Decoded bytes: content-encoding is not passed on (uvicorn and the client negotiate their own).
        return StreamingResponse(response.aiter_bytes(), status_code=response.status_code, headers=kept,
                                 background=BackgroundTask(response.aclose))

    async def get_json(self, path: str, query: list[tuple[str, str]], client_key: str | None) -> tuple[int, dict]:
        try:
            response = await self.client.get(f"{self.base_url}/{path}", params=query,
                                             headers={"x-goog-api-key": self.key_for(client_key)})
            return response.status_code, response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise GatewayError(502, f"no usable answer from the upstream Gemini API at {self.base_url}: "
                               f"{type(exc).__name__}") from None


def inline_local_files(body: dict, lookup, limit: int) -> bool:
    """Replaces fileData parts that name files held here by inlineData; True if any was.

    The upstream takes at most ``limit`` bytes inline, and one file named many
    times would be copied each time: past ``limit`` is a 413 before anything is copied."""
    found_parts: list[tuple[dict, dict, str, bytes]] = []

    def walk(value):
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            ref = value.get("fileData")
            if isinstance(ref, dict):
                found = lookup(ref.get("fileUri") or "")
                if found is not None:
                    found_parts.append((value, ref, *found))
            for item in value.values():
                walk(item)

    walk(body.get("contents"))
    if sum(len(data) * 4 // 3 for *_, data in found_parts) > limit:
        raise GatewayError(413, f"the files this request names would be more than {limit} bytes inline, the "
                           "most a request to the upstream takes; name fewer or smaller files.")
    for value, ref, mime, data in found_parts:
        del value["fileData"]
        value["inlineData"] = {"mimeType": ref.get("mimeType") or mime, "data": b64(data)}
    return bool(found_parts)


def encode(body: dict) -> bytes:
    return json.dumps(body).encode()
