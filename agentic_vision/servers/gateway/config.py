"""The gateway's settings and its ``--route NAME=MODEL[@BASE_URL]`` table."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from .clients import read_client_keys
from ...sandboxing.executors import as_library_set, check_docker_host

GEMINI_URL = "https://generativelanguage.googleapis.com"
_ROUTE = re.compile(r"^(?P<name>[^=\s]+)=(?P<model>[^\s]+?)(?:@(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://\S+))?$")


@dataclass(frozen=True)
class Route:
    """Requests for model ``name`` run the loop on ``model`` (``ollama:...``, ``openai:...``
    or a Gemini name), at ``base_url`` when given."""

    name: str
    model: str
    base_url: str | None = None


def parse_route(text: str) -> Route:
    match = _ROUTE.match(text.strip())
    if not match:
        raise InputError(f"bad route {text!r}: use NAME=MODEL or NAME=MODEL@BASE_URL, "
                         "e.g. gemini-3-flash-preview=ollama:qwen2.5vl")
    name = match["name"].removeprefix("models/")
    return Route(name, match["model"], match["url"])


def _env_key() -> str | None:
    return os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY") or None


@dataclass
class GatewayConfig:
    """Everything a gateway needs; ``create_app(GatewayConfig(...))`` makes the ASGI app.

    ``upstream_key`` (default: GEMINI_API_KEY / GOOGLE_API_KEY) is the key the gateway
    uses for Gemini; without one, the key each client sent is forwarded, unless
    ``auth_key`` is set (then the client's key is the gateway's own and stays here).
    ``docker_host`` is the Docker sandbox's engine (default: DOCKER_HOST, the Docker
    context, else the local socket).  ``client_keys`` (a ``--client-keys`` file, or
    key -> name) are more keys the gateway takes besides ``auth_key``, each its own
    identity for uploaded files.
    """

    sandbox: str = "auto"
    docker_host: str | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    auth_key: str | None = None
    client_keys: dict[str, str] | str | Path | None = None
    upstream_url: str = field(default_factory=lambda: os.environ.get("GOOGLE_GEMINI_BASE_URL") or GEMINI_URL)
    upstream_key: str | None = field(default_factory=_env_key)
    max_body_bytes: int = 20 * 2**20  # the Gemini API's own cap on an inline request
    max_file_bytes: int = 100 * 2**20  # one file through the Files API
    max_stored_bytes: int = 512 * 2**20  # all uploaded files together, held in memory
    max_concurrent: int = 4  # code-execution requests at once; more wait in the queue
    max_queue: int = 32  # code-execution requests waiting for a slot; more get 429
    queue_timeout: float = 60.0  # seconds a request waits for a slot or for memory, then 429 / 503
    max_memory_bytes: int = 256 * 2**20  # request bodies being received and parsed (see memory.py)
    warm_sandboxes: int = 2  # sandboxes kept started, so a request does not wait for one
    timeout: float = 30.0  # seconds per code run, as hosted
    max_steps: int = 12
    max_retries: int = 5
    max_image_side: int = 1536
    guard: bool = True
    libraries: tuple = ()  # extra requirements, set up / built beforehand (see sandbox setup --with)

    def __post_init__(self) -> None:
        self.libraries = as_library_set(self.libraries)
        if isinstance(self.routes, (list, tuple)):
            self.routes = {r.name: r for r in (parse_route(r) if isinstance(r, str) else r for r in self.routes)}
        check_docker_host(self.sandbox, self.docker_host)
        if self.max_concurrent < 1:
            raise InputError("max_concurrent must be at least 1")
        if self.max_queue < 0 or self.queue_timeout <= 0:
            raise InputError("max_queue must be 0 or more and queue_timeout more than 0")
        need = 4 * self.max_body_bytes + 32 * 2**20  # a quarter receives a body; the rest parses one
        if self.max_memory_bytes < need:
            raise InputError(f"--max-memory-mb (max_memory_bytes) must be at least {-(-need // 2**20)} for "
                             f"requests of up to {self.max_body_bytes / 2**20:g} MiB (--max-body-mb): four "
                             "times the largest body, and 32 MiB more")
        if isinstance(self.client_keys, (str, Path)):
            self.client_keys = read_client_keys(self.client_keys)
        self.client_keys = dict(self.client_keys or {})
        self.upstream_url = self.upstream_url.rstrip("/")

    @property
    def authenticates(self) -> bool:
        """Clients must send one of the gateway's keys (and their keys are not forwarded)."""
        return bool(self.auth_key or self.client_keys)
