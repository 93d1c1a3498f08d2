"""A scripted local Gemini server that speaks the ``generateContent`` wire format.

Tests and the offline benchmark point the real google-genai SDK at it::

    from agentic_vision.testing.gemini_server import ScriptedGemini, reply

    script = [
        reply.call("run_python", {"code": "print(1 + 1)"}),
        lambda request: reply.text(f"It printed {request.function_responses()[-1]['response']}"),
    ]
    with ScriptedGemini(script) as server:
        client = genai.Client(api_key="test-key",
                              http_options=types.HttpOptions(base_url=server.url))
        ...
    server.requests[0].body["contents"]       # what the SDK really sent (camelCase)
    server.requests[0].status, server.requests[0].error    # 200 / None, or the refusal

Every response carries deterministic ``usageMetadata`` (ceil(chars / 4) per text,
258 per image; override per step with ``usage={...}``), ``modelVersion``,
``responseId`` and ``finishReason``.  ``thoughtSignature=AUTO`` (the default) makes
the server issue a signature, as Gemini 3 does: on the first call of a call
reply, on the last part otherwise.  Function calls get ids ``call_<n>_<part>``.

Endpoints: ``POST /{v1,v1beta,v1alpha}/models/{model}:generateContent`` and
``:streamGenerateContent`` (``?alt=sse`` gives server-sent events, otherwise a
JSON array); ``:countTokens`` (the prompt's deterministic count, no step used);
``:embedContent`` / ``:batchEmbedContents`` (an embedding of [tokens, characters]
of each content's text, no step used);
``GET models`` and ``models/{model}`` (``models=``: the names served, listed,
and 404 for any other name; None, the default, answers ``models/{model}`` for
any name and lists ``gemini-3-flash-preview``).  Those GETs are recorded in
``server.lookups``, apart from the model calls in ``server.requests``.  An API
key (``x-goog-api-key`` header or ``?key=``) is required.

**The script** is a list of *steps*, one consumed per accepted request:

* a :class:`Reply` made by the builders on :class:`reply` (``text``, ``call``,
  ``calls``, ``hosted``, ``parts``, ``error``);
* a ``str`` (short for ``reply.text(...)``);
* a callable ``step(request: RecordedRequest) -> step`` computing the reply
  from the request.

A request the validator refuses (400) does not consume a step, as the real API
refuses it before the model runs.  Script problems are 500 ``INTERNAL`` errors
whose message starts with "ScriptedGemini:": the script is exhausted, a step
calls a function the request does not declare, a ``hosted`` step meets a request
without a ``codeExecution`` tool, or a callable step raised.  Instead of a list, pass
``router=callable(request) -> step`` (for concurrent conversations), e.g.
``router=reply.by_question({"How many cats?": [step0, step1]})``, which picks a
script by the first user text and the step by the number of model turns in the
history (stateless, so concurrent and repeated conversations work).

**Validation** follows the real API and refuses with 400 ``INVALID_ARGUMENT``:
empty ``contents``, roles other than user/model, parts without exactly one data
field, function calls / responses that do not pair up turn by turn (by name,
and by id when both sides carry one), inline data whose base64 does not decode,
is empty, or whose bytes do not match an image ``mimeType`` (png, jpeg, webp,
gif, heic/heif; other ``image/*`` types are refused), images inside function
responses when ``multimodal_function_responses=False``, and (Gemini 3 thought
signatures) a current-turn model step whose first ``functionCall`` lacks its
``thoughtSignature`` or a signature the server never issued for that part.

Request keys may be camelCase or snake_case (the SDK itself sends
``functionResponse.parts[].inline_data.mime_type``); bodies are normalised to
camelCase, except inside opaque values (``args``, ``response``, schemas).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from ..images import sniff_image
from .http_server import AUTO, ApiError, Image, RecordedRequestBase, ScriptedServer, question_router, tokens

__all__ = ["ScriptedGemini", "RecordedRequest", "Reply", "reply", "Image", "AUTO"]

DEFAULT_MODEL = "gemini-3-flash-preview"  # what the listing shows when no models= are given
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):"
                   r"(generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)$")
_MODELS = re.compile(r"^/(v1|v1beta|v1alpha)/models(?:/([^/:]+))?$")
_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
                "executableCode", "codeExecutionResult")
_OPAQUE = {"args", "response", "parameters", "parametersJsonSchema", "responseSchema",
           "responseJsonSchema", "labels"}  # user data: keys kept as sent
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "image/heic", "image/heif"}
# Google's documented dummy signatures for function calls the model did not make.
_BYPASS_SIGNATURES = {b"skip_thought_signature_validator", b"context_engineering_is_the_way_to_go"}
_B64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
IMAGE_TOKENS = 258  # deterministic token cost of one image in usage metadata


class _ApiError(ApiError):
    def __init__(self, code: int, message: str, status: str | None = None):
        super().__init__(code, message)
        self.status = status or _STATUS.get(code, "UNKNOWN")

    def payload(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def _bad(message: str) -> None:
    raise _ApiError(400, message)


def _b64decode(text: Any) -> bytes:
    """Decode standard or URL-safe base64 (the SDK sends URL-safe), padding optional."""
    if not isinstance(text, str) or not _B64.match(text):
        raise ValueError("not base64")
    text = text.rstrip("=").replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        raise ValueError("truncated base64")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _camel(key: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), key)


def normalise(value: Any) -> Any:
    """snake_case keys -> camelCase, recursively, leaving opaque user data alone."""
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        key = _camel(key)
        out[key] = v if key in _OPAQUE else normalise(v)
    return out


@dataclass
class RecordedRequest(RecordedRequestBase):
    """One HTTP request as the server saw it (``body`` is normalised to camelCase)."""

    path: str
    query: dict = field(default_factory=dict)  # the URL's query parameters, each a list (a key sent as ?key= shows here)
    api_version: str | None = None
    model: str | None = None
    method: str | None = None  # "generateContent", "streamGenerateContent", "countTokens"; "get" / "list" (models)
    api_key: str | None = None
    raw: Any = None
    body: dict | None = None
    status: int = 0
    response: Any = None

    @property
    def contents(self) -> list[dict]:
        return (self.body or {}).get("contents") or []

    def first_user_text(self) -> str:
        for content in self.contents:
            if content.get("role", "user") == "user":
                return "\n".join(p["text"] for p in content.get("parts", []) if "text" in p)
        return ""

    def model_turns(self) -> int:
        return sum(1 for c in self.contents if c.get("role") == "model")

    def function_responses(self) -> list[dict]:
        return [p["functionResponse"] for c in self.contents for p in c.get("parts", [])
                if "functionResponse" in p]

    def images(self) -> list[Image]:
        """Every inline image, in user parts and inside function responses, decoded."""
        found = []
        for i, content in enumerate(self.contents):
            for j, part in enumerate(content.get("parts", [])):
                blobs = [(f"contents[{i}].parts[{j}]", part.get("inlineData"))]
                for k, sub in enumerate((part.get("functionResponse") or {}).get("parts") or []):
                    blobs.append((f"contents[{i}].parts[{j}].functionResponse.parts[{k}]", sub.get("inlineData")))
                found += [Image(b["mimeType"], _b64decode(b["data"]), where) for where, b in blobs if b]
        return found


@dataclass
class Reply:
    """A scripted model answer (``parts``) or an HTTP error (``error``)."""

    parts: list[dict] = field(default_factory=list)
    usage: dict | None = None  # usageMetadata overrides, camelCase
    finish_reason: str = "STOP"
    error: tuple[int, str, str] | None = None  # (code, status, message)
    hosted: bool = False  # needs a codeExecution tool in the request


def _sign(part: dict, signature: Any) -> None:
    if signature is AUTO:
        part["thoughtSignature"] = AUTO
    elif signature:
        part["thoughtSignature"] = _b64(signature)


def _thought(summary: str | None) -> list[dict]:
    return [{"text": summary, "thought": True}] if summary else []


class reply:
    """Builders for script steps.  ``thought_signature=AUTO`` makes the server issue one;
    pass bytes to choose it, or ``None`` to send none.  ``thought`` adds a thought-summary
    part, sent only when the request sets ``thinkingConfig.includeThoughts``, as the API does.
    ``usage`` overrides usageMetadata fields, e.g. ``{"promptTokenCount": 10}``."""

    @staticmethod
    def text(text: str, *, thought: str | None = None, thought_signature: Any = AUTO,
             usage: dict | None = None, finish_reason: str = "STOP") -> Reply:
        parts = _thought(thought) + [{"text": text}]
        _sign(parts[-1], thought_signature)  # Gemini 3 signs the last part of a non-call answer
        return Reply(parts, usage, finish_reason)

    @staticmethod
    def call(name: str, args: dict | None = None, *, id: Any = AUTO, thought_signature: Any = AUTO,
             thought: str | None = None, text: str | None = None, usage: dict | None = None) -> Reply:
        """One ``functionCall`` (``id=AUTO`` -> the server assigns ``call_N``; ``None`` -> no id)."""
        return reply.calls((name, args or {}, id), thought_signature=thought_signature,
                           thought=thought, text=text, usage=usage)

    @staticmethod
    def calls(*calls: tuple, thought_signature: Any = AUTO, thought: str | None = None,
              text: str | None = None, usage: dict | None = None) -> Reply:
        """Parallel calls, each ``(name, args)`` or ``(name, args, id)``; only the first is signed."""
        parts = _thought(thought) + ([{"text": text}] if text else [])
        for n, (name, args, *rest) in enumerate(calls):
            call = {"name": name, "args": args}
            call_id = rest[0] if rest else AUTO
            if call_id is not None:
                call["id"] = call_id
            parts.append({"functionCall": call})
            if n == 0:
                _sign(parts[-1], thought_signature)
        return Reply(parts, usage)

    @staticmethod
    def hosted(code: str, output: str = "", *, outcome: str = "OUTCOME_OK", images: tuple | list = (),
               image_mime_type: str = "image/png", text: str | None = None, thought: str | None = None,
               thought_signature: Any = AUTO, usage: dict | None = None) -> Reply:
        """Hosted code execution: executableCode, codeExecutionResult, inlineData..., text."""
        parts = _thought(thought) + [
            {"executableCode": {"language": "PYTHON", "code": code}},
            {"codeExecutionResult": {"outcome": outcome, "output": output}},
        ] + [{"inlineData": {"mimeType": image_mime_type, "data": _b64(img)}} for img in images]
        if text is not None:
            parts.append({"text": text})
        _sign(parts[-1], thought_signature)
        tool_use = {"toolUsePromptTokenCount": tokens(output) + IMAGE_TOKENS * len(images)}
        return Reply(parts, {**tool_use, **(usage or {})}, hosted=True)

    @staticmethod
    def parts(*parts: dict, usage: dict | None = None, finish_reason: str = "STOP") -> Reply:
        """Raw response parts in wire format (camelCase), sent as given."""
        return Reply(list(parts), usage, finish_reason)

    @staticmethod
    def error(code: int, status: str | None = None, message: str | None = None) -> Reply:
        status = status or _STATUS.get(code, "UNKNOWN")
        return Reply(error=(code, status, message or f"Scripted error {code} {status}."))

    @staticmethod
    def by_question(scripts: dict[str, list]) -> Callable[[RecordedRequest], Any]:
        """A router: the script whose key equals (or, longest first, occurs in) the first
        user text; the step is ``script[number of model turns in the history]``."""
        return question_router(scripts, turns=RecordedRequest.model_turns, turn_word="model turns",
                               fail=lambda message: reply.error(500, "INTERNAL", f"ScriptedGemini: {message}"))


class ScriptedGemini(ScriptedServer):
    """The server.  ``script``: list of steps (see module docstring), or ``router``:
    ``callable(request) -> step``.  ``api_key``: the only key accepted (None: any
    non-empty key).  ``multimodal_function_responses``: accept images inside function
    responses (Gemini 3) or refuse them (older models).  ``check_thought_signatures``:
    Gemini 3 signature validation.  ``strict_function_response_ids``: refuse a function
    response without the id of the call it answers.  ``model_version``: reported
    ``modelVersion`` (default: the model in the URL).  ``models``: the names ``GET
    models/{name}`` knows (None: any).  ``models_errors``: ``{"get": reply.error(...),
    "list": ...}``, what ``GET models/{name}`` and ``GET models`` answer instead (a key
    without that permission, a proxy that does not serve them)."""

    name, request_kind = "ScriptedGemini", "generateContent"
    error_type, reply_type, text_reply = _ApiError, Reply, staticmethod(reply.text)
    requests: list[RecordedRequest]

    def __init__(self, script: list | tuple = (), *, router: Callable[[RecordedRequest], Any] | None = None,
                 api_key: str | None = None, multimodal_function_responses: bool = True,
                 check_thought_signatures: bool = True, strict_function_response_ids: bool = False,
                 model_version: str | None = None, models: tuple | list | None = None,
                 models_errors: dict[str, Reply] | None = None, host: str = "127.0.0.1", port: int = 0):
        super().__init__(script, router=router, host=host, port=port)
        self.models = list(models) if models is not None else None
        self.models_errors = dict(models_errors or {})
        self.lookups: list[RecordedRequest] = []  # GET models / models/{name}, apart from the model calls
        self.api_key, self.model_version = api_key, model_version
        self.multimodal_function_responses = multimodal_function_responses
        self.check_thought_signatures = check_thought_signatures
        self.strict_function_response_ids = strict_function_response_ids
        self.issued_signatures: dict[bytes, str | None] = {}  # signature -> function name (None: not a call)

    # -- helpers for tests ---------------------------------------------------------
    def last_function_response(self, request: int = -1) -> dict:
        """The last ``functionResponse`` (camelCase dict) in request ``request``."""
        return self.requests[request].function_responses()[-1]

    # -- HTTP ----------------------------------------------------------------------
    def _record(self, h: BaseHTTPRequestHandler) -> RecordedRequest:
        parts = urlsplit(h.path)
        return RecordedRequest(path=parts.path, query=parse_qs(parts.query))

    def _log(self, rec: RecordedRequest) -> None:
        # GeminiModel looks its model up before the first call: ``requests`` stays the model calls.
        (self.lookups if rec.method in ("get", "list") else self.requests).append(rec)

    def _serve(self, h: BaseHTTPRequestHandler, rec: RecordedRequest, raw: bytes) -> None:
        match = _PATH.match(rec.path) if h.command == "POST" else None
        listing = _MODELS.match(rec.path) if h.command == "GET" else None
        if not match and not listing:
            raise _ApiError(404, f"Method not found: {h.command} {rec.path}")
        if match:
            rec.api_version, rec.model, rec.method = match.groups()
        else:
            rec.api_version, rec.model = listing.groups()
            rec.method = "get" if rec.model else "list"
        query = parse_qs(urlsplit(h.path).query)
        rec.api_key = h.headers.get("x-goog-api-key") or query.get("key", [None])[0]
        if not rec.api_key:
            raise _ApiError(403, "Method doesn't allow unregistered callers (callers without established "
                            "identity). Please use API Key or other form of API consumer identity to call this API.")
        if self.api_key is not None and rec.api_key != self.api_key:
            _bad("API key not valid. Please pass a valid API key.")
        if listing:
            if rec.method in self.models_errors:
                code, status, message = self.models_errors[rec.method].error
                raise _ApiError(code, message, status)
            rec.status, rec.response = 200, self._models(rec.model)
            return
        raw_body = self._read_json(rec, raw, "Invalid JSON payload received.",
                                   "Invalid JSON payload received. Expected an object.")
        rec.body = normalise(raw_body)
        if rec.method in ("embedContent", "batchEmbedContents"):
            rec.status, rec.response = 200, self._embed(rec.body)
            return
        if rec.method == "countTokens":
            request = rec.body.get("generateContentRequest") or rec.body
            self._validate(request)
            rec.status, rec.response = 200, {"totalTokens": self._usage(request, [], None)["promptTokenCount"]}
            return
        self._validate(rec.body)
        rec.status, rec.response = 200, self._answer(rec)

    def _respond(self, h: BaseHTTPRequestHandler, rec: RecordedRequest, headers: dict) -> None:
        if rec.status == 200 and rec.method == "streamGenerateContent":
            chunks = self._chunks(rec.response)
            sse = parse_qs(urlsplit(h.path).query).get("alt", [""])[0] == "sse"
            text = "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks) if sse else json.dumps(chunks)
            data, content_type = text.encode(), "text/event-stream" if sse else "application/json"
        else:
            data, content_type = json.dumps(rec.response).encode(), "application/json"
        self._send(h, rec.status, data, f"{content_type}; charset=UTF-8", headers)

    @staticmethod
    def _chunks(response: dict) -> list[dict]:
        """Split a response into one stream chunk per part; the last carries finishReason."""
        candidate = response["candidates"][0]
        parts = candidate["content"]["parts"] or [{"text": ""}]
        chunks = []
        for n, part in enumerate(parts):
            chunk_candidate = {"content": {"role": "model", "parts": [part]}, "index": 0}
            if n == len(parts) - 1:
                chunk_candidate["finishReason"] = candidate["finishReason"]
            chunks.append({**response, "candidates": [chunk_candidate]})
        return chunks

    @staticmethod
    def _embed(body: dict) -> dict:
        """An embedding that shows what was embedded: [tokens, characters] of the content's text."""
        def one(request: dict) -> dict:
            text = "".join(p.get("text", "") for p in (request.get("content") or {}).get("parts") or [])
            return {"values": [float(tokens(text)), float(len(text))]}
        if "requests" in body:
            return {"embeddings": [one(r) for r in body["requests"]]}
        return {"embedding": one(body)}

    def _models(self, name: str | None) -> dict:
        def model(n: str) -> dict:
            return {"name": f"models/{n}", "baseModelId": n, "version": "scripted", "displayName": n,
                    "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                    "supportedGenerationMethods": ["generateContent", "countTokens"]}
        if name is None:
            return {"models": [model(n) for n in self.models or [DEFAULT_MODEL]]}
        if self.models is not None and name not in self.models:
            raise _ApiError(404, f"models/{name} is not found for API version v1beta.")
        return model(name)

    # -- the script ----------------------------------------------------------------
    def _answer(self, rec: RecordedRequest) -> dict:
        step = self._step(rec)
        if step.error:
            code, status, message = step.error
            raise _ApiError(code, message, status)
        body = rec.body or {}
        tools = body.get("tools") or []
        if step.hosted and not any("codeExecution" in t for t in tools):
            raise _ApiError(500, "ScriptedGemini: the script has a hosted code-execution reply "
                            "but the request has no codeExecution tool.")
        declared = {d.get("name") for t in tools for d in t.get("functionDeclarations") or []}
        for part in step.parts:
            if "functionCall" in part and part["functionCall"]["name"] not in declared:
                raise _ApiError(500, f"ScriptedGemini: the script calls {part['functionCall']['name']!r} "
                                f"but the request declares only {sorted(filter(None, declared))}.")
        include_thoughts = ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts")
        served = self._next_serial()
        with self._lock:
            parts = [self._issue(dict(p), served, n) for n, p in enumerate(step.parts)]
        return {
            "candidates": [{"content": {"role": "model", "parts": [
                p for p in parts if include_thoughts or not p.get("thought")]},
                "finishReason": step.finish_reason, "index": 0}],
            "usageMetadata": self._usage(body, parts, step.usage),
            "modelVersion": self.model_version or rec.model,
            "responseId": f"scripted-{served:04d}",
        }

    def _issue(self, part: dict, served: int, n: int) -> dict:
        """Fill in AUTO ids and signatures, remembering each signature issued."""
        call = part.get("functionCall")
        if call is not None:
            part["functionCall"] = call = dict(call)
            if call.get("id") is AUTO:
                call["id"] = f"call_{served}_{n}"
        if part.get("thoughtSignature") is AUTO:
            # \xfb\xff: standard and URL-safe base64 differ, as with real signatures.
            part["thoughtSignature"] = _b64(b"\xfb\xff" + f"scripted-signature-{served}-{n}".encode())
        if "thoughtSignature" in part:
            self.issued_signatures[_b64decode(part["thoughtSignature"])] = call["name"] if call else None
        return part

    @staticmethod
    def _usage(body: dict, parts: list[dict], overrides: dict | None) -> dict:
        """Deterministic token counts: ceil(chars / 4) per text, IMAGE_TOKENS per image."""
        def cost(part: dict) -> int:
            if "text" in part:
                return tokens(part["text"])
            if "inlineData" in part:
                return IMAGE_TOKENS
            if "functionResponse" in part:
                fr = part["functionResponse"]
                return tokens(json.dumps(fr.get("response"))) + IMAGE_TOKENS * len(fr.get("parts") or [])
            inner = part.get("functionCall") or part.get("executableCode") or part.get("codeExecutionResult")
            return tokens(json.dumps(inner)) if inner else 0

        history = list(body.get("contents") or []) + [body.get("systemInstruction") or {}]
        prompt = sum(cost(p) for c in history for p in c.get("parts") or [])
        usage = {"promptTokenCount": prompt,
                 "candidatesTokenCount": max(1, sum(cost(p) for p in parts if not p.get("thought"))),
                 "thoughtsTokenCount": sum(cost(p) for p in parts if p.get("thought"))}
        usage.update(overrides or {})
        usage.setdefault("totalTokenCount", sum(usage.get(k, 0) for k in (
            "promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "toolUsePromptTokenCount")))
        return usage

    # -- validation ----------------------------------------------------------------
    def _validate(self, body: dict) -> None:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            _bad("* GenerateContentRequest.contents: contents is not specified")
        for i, content in enumerate(contents):
            if not isinstance(content, dict):
                _bad(f"contents[{i}]: a content must be an object")
            role = content.get("role", "user" if len(contents) == 1 else None)
            if role not in ("user", "model"):
                _bad(f"contents[{i}].role: Please use a valid role: user, model. (got {role!r})")
            content["role"] = role
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                _bad(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
            for j, part in enumerate(parts):
                self._check_part(part, f"contents[{i}].parts[{j}]", role)
        for j, part in enumerate((body.get("systemInstruction") or {}).get("parts") or []):
            self._check_part(part, f"systemInstruction.parts[{j}]", "user")
        self._check_pairs(contents)
        if self.check_thought_signatures:
            self._check_signatures(contents)

    def _check_part(self, part: Any, where: str, role: str) -> None:
        present = [k for k in _DATA_FIELDS if isinstance(part, dict) and k in part]
        if not present:
            _bad(f"{where}: required oneof field 'data' must have one initialized field")
        if len(present) > 1:
            _bad(f"{where}: oneof field 'data' is already set. Cannot set '{present[1]}'")
        if not isinstance(part[present[0]], str if present[0] == "text" else dict):
            _bad(f"Invalid value at '{where}.{present[0]}': wrong JSON type")
        if "inlineData" in part:
            self._check_blob(part["inlineData"], f"{where}.inlineData")
        if "thoughtSignature" in part:
            try:
                _b64decode(part["thoughtSignature"])
            except ValueError:
                _bad(f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 decoding failed")
        if "functionCall" in part:
            if role != "model":
                _bad(f"{where}.functionCall: function calls can only appear in model turns")
            if not part["functionCall"].get("name"):
                _bad(f"{where}.functionCall.name: Name cannot be empty.")
        if "functionResponse" in part:
            response = part["functionResponse"]
            if role != "user":
                _bad(f"{where}.functionResponse: function responses can only appear in user turns")
            if not response.get("name"):
                _bad(f"{where}.functionResponse.name: Name cannot be empty.")
            if not isinstance(response.get("response", {}), dict):
                _bad(f"Invalid value at '{where}.functionResponse.response' (google.protobuf.Struct): "
                     "the response must be a JSON object")
            for k, sub in enumerate(response.get("parts") or []):
                sub_where = f"{where}.functionResponse.parts[{k}]"
                if not self.multimodal_function_responses:
                    _bad(f"{sub_where}: multimodal function responses (images inside a functionResponse) "
                         "are not supported by this model; send images as inlineData parts instead.")
                if not isinstance(sub, dict) or ("inlineData" not in sub and "fileData" not in sub):
                    _bad(f"{sub_where}: a function response part needs inlineData or fileData")
                if "inlineData" in sub:
                    self._check_blob(sub["inlineData"], f"{sub_where}.inlineData")

    @staticmethod
    def _check_blob(blob: dict, where: str) -> None:
        if not isinstance(blob, dict) or not blob.get("mimeType"):
            _bad(f"{where}.mimeType: a MIME type is required")
        mime = blob["mimeType"]
        try:
            data = _b64decode(blob.get("data", ""))
        except ValueError:
            _bad(f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed")
        if not data:
            _bad(f"{where}.data: inline data must not be empty")
        if mime.startswith("image/"):
            if mime not in _IMAGE_TYPES:
                _bad(f"{where}: Unsupported MIME type: {mime}")
            actual = sniff_image(data)
            if actual != mime.replace("image/heif", "image/heic"):
                _bad(f"{where}: Unable to process input image: mimeType is {mime} but the bytes "
                     f"{'are ' + actual if actual else 'are not a known image format'}.")

    def _check_pairs(self, contents: list[dict]) -> None:
        def of(content: dict | None, kind: str) -> list[dict]:
            return [p[kind] for p in (content or {}).get("parts", []) if kind in p]

        for i, content in enumerate(contents):
            prev = contents[i - 1] if i else None
            if of(content, "functionResponse") and not of(prev, "functionCall"):
                _bad(f"contents[{i}]: Please ensure that function response turn comes immediately after "
                     "a function call turn.")
            calls = of(content, "functionCall")
            if not calls:
                continue
            if prev is None or prev["role"] != "user":
                _bad(f"contents[{i}]: Please ensure that function call turn comes immediately after a user "
                     "turn or after a function response turn.")
            answers = of(contents[i + 1] if i + 1 < len(contents) else None, "functionResponse")
            if len(answers) != len(calls):
                _bad(f"contents[{i + 1}]: Please ensure that the number of function response parts is equal "
                     f"to the number of function call parts of the function call turn (contents[{i}] has "
                     f"{len(calls)} function call(s), the next turn {len(answers)} function response(s)).")
            pending = list(calls)
            for answer in answers:
                if self.strict_function_response_ids and not answer.get("id") and any(c.get("id") for c in pending):
                    _bad(f"contents[{i + 1}]: functionResponse {answer['name']!r} has no id; "
                         "it must carry the id of the functionCall it answers.")
                found = next((c for c in pending if c["name"] == answer["name"] and (
                    not answer.get("id") or not c.get("id") or c["id"] == answer["id"])), None)
                if found is None:
                    _bad(f"contents[{i + 1}]: functionResponse (name={answer['name']!r}, id={answer.get('id')!r}) "
                         f"matches no functionCall of contents[{i}]: functionResponse.id/name does not match "
                         f"functionCall.id/name (calls: {[(c['name'], c.get('id')) for c in calls]}).")
                pending.remove(found)

    def _check_signatures(self, contents: list[dict]) -> None:
        # The current turn starts at the last user content that is not only function responses.
        start = max((i for i, c in enumerate(contents) if c["role"] == "user"
                     and any("functionResponse" not in p for p in c["parts"])), default=0)
        for i, content in enumerate(contents):
            if content["role"] != "model":
                continue
            calls = [(j, p) for j, p in enumerate(content["parts"]) if "functionCall" in p]
            if i > start and calls and "thoughtSignature" not in calls[0][1]:
                j, part = calls[0]
                _bad(f"Function call is missing a thought_signature in functionCall parts. This is required "
                     f"for tools to work correctly, and missing thought_signature may lead to degraded model "
                     f"performance. Additional data, function call `default_api:{part['functionCall']['name']}` "
                     f", position contents[{i}].parts[{j}]. Please refer to "
                     "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
            for j, part in enumerate(content["parts"]):
                if "thoughtSignature" not in part:
                    continue
                signature = _b64decode(part["thoughtSignature"])
                name = (part.get("functionCall") or {}).get("name")
                if signature not in _BYPASS_SIGNATURES and (
                        signature not in self.issued_signatures or self.issued_signatures[signature] != name):
                    _bad(f"Corrupted thought signature at contents[{i}].parts[{j}]: it is not the signature "
                         "this server issued for that part.")
