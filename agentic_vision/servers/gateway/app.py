"""The ASGI app: routing, auth, memory and concurrency limits, and the handlers.

Paths are matched at their end, so a prefix in the client's base URL (or a
mount point in a bigger app) needs no setting: ``.../v1beta/models/m:generateContent``
and ``.../v1/...`` both work, as do ``.../upload/v1beta/files`` for uploads.
"""

from __future__ import annotations

import contextlib
import logging
import re

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.middleware import Middleware
from starlette.routing import Route

from ...errors import InputError
from .admission import Admission, QueueFull, Ticket
from .backends import Backends
from .clients import Client, Clients, need_owner
from .config import GatewayConfig
from .errors import GatewayError, bad_request
from .exchange import Exchange
from .files import FileStore, StoredFile
from .history import FileLookup, read_contents
from .memory import RETRY_AFTER_S, Memory, in_thread
from .request_log import RequestLog
from .streaming import ExchangeResponse
from .upstream import Upstream, encode, inline_local_files

_VERSION = r"(?P<version>v1|v1beta|v1alpha)"
_UPLOAD = re.compile(rf"^(?P<prefix>.*?)/upload/{_VERSION}/files/?$")
_API = re.compile(rf"^(?P<prefix>.*?)/{_VERSION}/(?P<rest>(?:models|files).*)$")
_MODEL_METHOD = re.compile(r"^models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
_FORWARDED_METHODS = {"embedContent", "batchEmbedContents"}  # served by the upstream as they are
log = logging.getLogger("agentic_vision.gateway")


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.clients = Clients(config.auth_key, config.client_keys)
        self.backends = Backends(config)
        self.files = FileStore(config.max_file_bytes, config.max_stored_bytes)
        self.upstream = Upstream(config.upstream_url, self.backends.gemini_key)
        self.memory = Memory(config.max_memory_bytes)
        # Code-execution requests: max_concurrent run, max_queue wait for a slot (in order).
        self.slots = Admission(config.max_concurrent, config.max_queue)
        self.limiter = anyio.CapacityLimiter(config.max_concurrent)

    # -- plumbing -------------------------------------------------------------------------

    def client_key(self, request: Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query_params.get("key") or None

    def public_base(self, request: Request, prefix: str) -> str:
        return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}{prefix}"

    async def take_slot(self, request: Request) -> Ticket:
        """A code-execution slot, after waiting in the queue if need be; a client that goes
        away while it waits gives its place up."""
        c = self.config
        ticket = gone = full = None
        async with anyio.create_task_group() as group:
            async def watch() -> None:
                nonlocal gone
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                gone = True
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                ticket = await self.slots.take(1, c.queue_timeout)
            except QueueFull:
                full = True
            group.cancel_scope.cancel()
        if full:
            raise GatewayError(429, f"the gateway runs {c.max_concurrent} code-execution requests at once and "
                               f"{c.max_queue} more are waiting (--max-queue); retry shortly.",
                               retry_after=RETRY_AFTER_S)
        if gone:
            if ticket is not None:
                ticket.release()
            raise GatewayError(499, "the client went away while it waited for a code-execution slot.")
        if ticket is None:
            raise GatewayError(429, f"waited {c.queue_timeout:g} s (--queue-timeout) for one of the gateway's "
                               f"{c.max_concurrent} code-execution slots; retry shortly.", retry_after=RETRY_AFTER_S)
        return ticket

    # -- dispatch -------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response | ExchangeResponse:
        try:
            return await self.dispatch(request)
        except GatewayError as exc:
            return exc.response()
        except InputError as exc:  # e.g. a setting the backend refused
            return bad_request(str(exc)).response()
        except Exception as exc:  # a bug: answer it in Google's shape and keep serving
            log.exception("error serving %s %s", request.method, request.url.path)
            return GatewayError(500, f"internal error in the gateway: {type(exc).__name__}").response()

    async def dispatch(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        upload = _UPLOAD.match(path)
        if upload:
            token = request.query_params.get("upload_id")
            if token:  # the URL is the credential (the Python SDK sends no key here)
                return await self.upload_chunk(request, token)
            client = self.clients.identify(self.client_key(request))
            return await self.upload_start(request, client, upload["prefix"], upload["version"])
        api = _API.match(path)
        if not api:
            raise GatewayError(404, f"Method not found: {method} {path}")
        client = self.clients.identify(self.client_key(request))
        version, rest = api["version"], api["rest"].rstrip("/")
        if rest == "models" and method == "GET":
            return await self.list_models(request, version)
        if rest.startswith("files"):
            return self.file_request(request, client, api["prefix"], rest)
        call = _MODEL_METHOD.match(rest)
        if call and method == "POST":
            model, what = call["model"], call["method"]
            if what in ("generateContent", "streamGenerateContent"):
                return await self.generate(request, client, version, rest, model,
                                           stream=what == "streamGenerateContent")
            if what == "countTokens":
                if model in self.config.routes:
                    raise bad_request(f"countTokens is not available for {model!r}, which is routed to "
                                      f"{self.config.routes[model].model}.")
                return await self.generate(request, client, version, rest, model, stream=False, count=True)
            if what in _FORWARDED_METHODS and model not in self.config.routes:
                raw, received = await self.memory.receive(request, self.config.max_body_bytes)
                try:
                    return await self.forward(request, version, rest, bytes(raw))
                finally:
                    received.release()
        if rest.startswith("models/") and "/" not in rest[7:] and ":" not in rest and method == "GET":
            return await self.get_model(request, version, rest[7:])
        raise GatewayError(404, f"Method not found: {method} {path}")

    # -- generateContent ------------------------------------------------------------------

    async def generate(self, request: Request, client: Client, version: str, rest: str, model: str,
                       stream: bool, count: bool = False) -> Response:
        """generateContent (and countTokens, always forwarded). The body is held in the receiving
        budget until it has been parsed and read (or has gone upstream); a code-execution
        request keeps its share of the parsing budget while it waits for a slot and runs
        (its text and images, and the model client's copies of them, are about that much)."""
        raw, received = await self.memory.receive(request, self.config.max_body_bytes)
        parsed = slot = None
        lookup = self.files.lookup_for(client.owner)
        try:
            body, parsed = await self.memory.parse(raw)
            tools = body.get("tools") or []
            if not isinstance(tools, list):
                raise bad_request("Invalid value at 'tools': expected a list.")
            if count or not any(isinstance(t, dict) and "codeExecution" in t for t in tools):
                if model in self.config.routes:
                    raise bad_request(f"model {model!r} is routed to {self.config.routes[model].model}, which "
                                      "this gateway serves for codeExecution requests only; add the "
                                      "codeExecution tool.")
                raw = encode(body) if inline_local_files(body, lookup, self.config.max_body_bytes) else bytes(raw)
                del body
                parsed.shrink(len(raw))  # what is held now is the bytes on their way upstream
                return await self.forward(request, version, rest, raw)
            exchange = await in_thread(self.exchange_for, body, model, self.client_key(request), lookup, stream)
            del body, raw
            received.release()
            slot = await self.take_slot(request)
        finally:
            received.release()
            if parsed is not None and slot is None:
                parsed.release()

        def done() -> None:
            slot.release()
            parsed.release()
        request.state.exchange = exchange  # for the request's log line
        return ExchangeResponse(exchange, stream=stream, model_version=model, limiter=self.limiter, done=done)

    def exchange_for(self, body: dict, model: str, client_key: str | None, lookup: FileLookup,
                     stream: bool) -> Exchange:
        """The request checked and read (images decoded: off the event loop)."""
        parsed = read_contents(body.get("contents"), lookup, self.config.max_image_side)
        for key in ("generationConfig", "systemInstruction", "toolConfig"):
            if not isinstance(body.get(key) or {}, dict):
                raise bad_request(f"Invalid value at '{key}': expected a JSON object.")
        if not isinstance(body.get("safetySettings") or [], list):
            raise bad_request("Invalid value at 'safetySettings': expected a list.")
        system = body.get("systemInstruction") or {}
        texts = []
        for j, part in enumerate(system.get("parts") or [] if isinstance(system, dict) else []):
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                raise bad_request(f"systemInstruction.parts[{j}]: only text parts are taken here.")
            texts.append(part["text"])
        backend = self.backends.model(model, body, client_key)  # checks the settings for its backend
        thinking = (body.get("generationConfig") or {}).get("thinkingConfig")
        thinking = thinking if isinstance(thinking, dict) else {}
        c = self.config
        settings = dict(timeout=c.timeout, max_steps=c.max_steps, max_retries=c.max_retries,
                        max_image_side=c.max_image_side, guard=c.guard)
        return Exchange(backend, parsed, sandbox=c.sandbox,
                        sandbox_options={"pool_size": c.warm_sandboxes, "docker_host": c.docker_host,
                                         "libraries": c.libraries},
                        settings=settings, system="\n".join(texts),
                        include_thoughts=bool(thinking.get("includeThoughts")), stream=stream)

    async def forward(self, request: Request, version: str, rest: str, raw: bytes | None) -> Response:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
        return await self.upstream.forward(request.method, f"{version}/{rest}", query, raw, self.client_key(request))

    # -- models ---------------------------------------------------------------------------

    def route_model(self, name: str) -> dict:
        route = self.config.routes[name]
        return {"name": f"models/{name}", "baseModelId": name, "version": "local",
                "displayName": f"{name} (agentic-vision route to {route.model})",
                "description": f"Code-execution requests for {name} run the local loop on {route.model}.",
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]}

    async def list_models(self, request: Request, version: str) -> Response:
        routed = [self.route_model(name) for name in self.config.routes]
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
        try:
            status, listing = await self.upstream.get_json(f"{version}/models", query, self.client_key(request))
        except GatewayError:
            if not routed:
                raise
            status, listing = 200, {}
        if status != 200:
            if not routed:
                return JSONResponse(listing, status_code=status)
            listing = {}
        names = {m["name"] for m in routed}
        models = routed + [m for m in listing.get("models") or [] if m.get("name") not in names]
        return JSONResponse({**listing, "models": models})

    async def get_model(self, request: Request, version: str, name: str) -> Response:
        if name in self.config.routes:
            return JSONResponse(self.route_model(name))
        return await self.forward(request, version, f"models/{name}", None)

    # -- files ----------------------------------------------------------------------------

    async def upload_start(self, request: Request, client: Client, prefix: str, version: str) -> Response:
        if request.method != "POST":
            raise GatewayError(404, f"Method not found: {request.method} {request.url.path}")
        owner = need_owner(client, "uploaded files")
        raw, received = await self.memory.receive(request, self.config.max_body_bytes)
        try:
            body, parsed = await self.memory.parse(raw)
            parsed.release()
        finally:
            received.release()
        token = self.files.start(owner, request.headers, body)
        url = f"{self.public_base(request, prefix)}/upload/{version}/files?upload_id={token}&upload_protocol=resumable"
        return JSONResponse({}, headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"})

    async def upload_chunk(self, request: Request, token: str) -> Response:
        data, received = await self.memory.receive(request, self.config.max_file_bytes)
        try:
            outcome = self.files.chunk(token, request.headers, data)
        finally:
            del data
            received.release()
        if isinstance(outcome, StoredFile):
            base = self.public_base(request, _UPLOAD.match(request.url.path)["prefix"])
            return JSONResponse({"file": outcome.metadata(base)}, headers={"x-goog-upload-status": "final"})
        return Response(b"", headers={"x-goog-upload-status": "active",
                                      "x-goog-upload-size-received": str(outcome)})

    def file_request(self, request: Request, client: Client, prefix: str, rest: str) -> Response:
        """Only the identity that uploaded a file sees it; to any other it does not exist (404)."""
        base = self.public_base(request, prefix)
        owner = need_owner(client, "files here")
        if rest == "files" and request.method == "GET":
            return JSONResponse({"files": [f.metadata(base) for f in self.files.list(owner)]})
        match = re.fullmatch(r"files/([a-z0-9-]{1,40})", rest)
        if match and request.method == "GET":
            return JSONResponse(self.files.get(owner, match.group(1)).metadata(base))
        if match and request.method == "DELETE":
            self.files.delete(owner, match.group(1))
            return JSONResponse({})
        raise GatewayError(404, f"Method not found: {request.method} {request.url.path}")


def create_app(config: GatewayConfig | None = None, **settings) -> Starlette:
    """The gateway as an ASGI app (mount it anywhere; paths match at their end).

    >>> app = create_app(sandbox="local", routes=["vlm=ollama:qwen2.5vl"])
    """
    gateway = Gateway(config or GatewayConfig(**settings))
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await gateway.upstream.close()

    app = Starlette(routes=[Route("/{path:path}", gateway.handle, methods=methods)], lifespan=lifespan,
                    middleware=[Middleware(RequestLog)])
    app.state.gateway = gateway
    return app
