"""A scripted local server that speaks the OpenAI chat-completions wire format.

Tests and the offline benchmark point the real ``openai`` SDK (or the
``openai:`` / ``ollama:`` backends) at it, as they would point it at vLLM or
Ollama::

    from agentic_vision.testing.openai_server import ScriptedOpenAI, reply

    script = [
        reply.call("run_python", {"code": "print(1 + 1)"}),
        lambda request: reply.text(f"It printed {request.tool_results()[-1]['content']}"),
    ]
    with ScriptedOpenAI(script) as server:
        client = openai.OpenAI(api_key="unused", base_url=server.url)   # url ends in /v1
        ...
    server.requests[0].body["messages"]      # what the SDK really sent
    server.requests[0].status, server.requests[0].error   # 200 / None, or the refusal

Every response looks like the real one: ``id``, ``object: "chat.completion"``,
``created``, ``model``, ``choices[0].message`` (``content``, ``tool_calls``
with ``arguments`` as a JSON *string*, and ``reasoning_content`` when the step
has reasoning, as vLLM thinking models send; ``reasoning_field="reasoning"`` for
Ollama's name), ``finish_reason``
(``tool_calls`` when the reply calls a tool) and deterministic ``usage``
(ceil(chars / 4) per text, ``IMAGE_TOKENS`` per image; reasoning counts in
``completion_tokens`` and in ``completion_tokens_details.reasoning_tokens``, as
OpenAI reports it; override per step with ``usage={...}``).  Tool calls get
ids ``call_<n>_<i>``.

Endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``.  ``api_key``:
the only key accepted as ``Authorization: Bearer ...`` (401 otherwise); None
(the default) accepts any key or none, like a local vLLM or Ollama.
``models``: the model names served (404 for others); None serves any name.

**The script** is a list of *steps*, one consumed per accepted request:

* a :class:`Reply` made by the builders on :class:`reply` (``text``, ``call``,
  ``calls``, ``error``);
* a ``str`` (short for ``reply.text(...)``);
* a callable ``step(request: RecordedRequest) -> step`` computing the reply
  from the request (it may also assert on the request: an exception becomes a
  500 whose message names it).

A request the validator refuses does not consume a step, as a real server
refuses it before the model runs.  Script problems are 500 errors whose message
starts with "ScriptedOpenAI:": the script is exhausted, a step calls a function
the request does not declare (or the request declares no tools; ``undeclared_ok=True``
on the builder allows it, for a model that hallucinates a tool), or a callable
step raised.  These carry ``x-should-retry: false``, so the SDK does not retry
them (a retry would consume the next step and hide the message).  Instead of a
list, pass ``router=callable(request) -> step``, e.g.
``router=reply.by_question({"How many coins?": [step0, step1]})`` (the script
by the first user text, the step by the number of assistant messages).

**Validation** refuses with 400 ``invalid_request_error``, as OpenAI or vLLM do:
an empty ``model`` or ``messages``; roles other than system/user/assistant/tool;
content that is not a string or a list of parts (``text``; ``image_url`` in user
messages only); ``image_url`` that is not a ``data:`` URL of PNG/JPEG/WEBP/GIF
whose base64 decodes to bytes of that type; an image inside a ``tool`` message
(vLLM refuses it); an assistant message without content and without
``tool_calls``; tool calls without id / name or whose ``arguments`` is not a
string; a ``tool`` message that answers no pending call of the assistant message
before it, or answers one twice; a user/assistant/system message (or the end of
the list) while calls are unanswered; a malformed ``tools`` list or
``tool_choice``.  With ``supports_tools=False`` any ``tools`` or ``tool_choice``
is refused with 400 and ``tools_error`` (default: like Ollama, "... does not
support tools"); with ``supports_images=False`` any image is refused with 400
``images_error`` (default: like vLLM, "... is not a multimodal model").
``reasoning_effort`` must be one of ``reasoning_efforts`` (default: OpenAI's newest
models' none, minimal, low, medium, high, xhigh), else 400 "Unsupported value";
``reasoning_efforts=None`` is a model that takes no reasoning setting (gpt-4o): any
``reasoning_effort`` is refused with 400 ``param: "reasoning_effort"``, worded as
OpenAI does or as ``reasoning_error`` says (``{model}`` is filled in).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import urlsplit

from ..images import sniff_image
from .http_server import AUTO, ApiError, Image, RecordedRequestBase, ScriptedServer, question_router, tokens

__all__ = ["ScriptedOpenAI", "RecordedRequest", "Reply", "reply", "Image", "AUTO", "IMAGE_TOKENS"]

IMAGE_TOKENS = 85  # deterministic token cost of one image in usage
ROLES = ("system", "user", "assistant", "tool")
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.S)
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
          502: "server_error", 503: "server_error", 504: "server_error"}
_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")  # what OpenAI's newest models take


class _ApiError(ApiError):
    def __init__(self, code: int, message: str, type: str | None = None, param: str | None = None,
                 headers: dict | None = None, error_code: str | None = None):
        super().__init__(code, message, headers)
        self.param = param
        self.type = type or _TYPES.get(code, "api_error")
        self.error_code = error_code or _CODES.get(code)

    def payload(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.error_code}}


def _bad(message: str, param: str | None = None) -> None:
    raise _ApiError(400, message, param=param)


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``data:<mime>;base64,<data>`` -> (mime, bytes); ValueError if it is not one."""
    match = _DATA_URL.match(url or "")
    if not match:
        raise ValueError("not a base64 data URL")
    try:
        return match.group(1).lower(), base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the base64 does not decode") from None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


@dataclass
class RecordedRequest(RecordedRequestBase):
    """One HTTP request as the server saw it."""

    path: str
    method: str = "POST"
    api_key: str | None = None
    raw: Any = None
    body: dict | None = None
    status: int = 0
    response: Any = None

    @property
    def model(self) -> str | None:
        return (self.body or {}).get("model")

    @property
    def messages(self) -> list[dict]:
        return (self.body or {}).get("messages") or []

    @property
    def tools(self) -> list[dict]:
        return (self.body or {}).get("tools") or []

    def tool_names(self) -> list[str]:
        return [(t.get("function") or {}).get("name") for t in self.tools]

    def roles(self) -> list[str]:
        return [m.get("role") for m in self.messages]

    def system_text(self) -> str:
        return "\n".join(_text_of(m.get("content")) for m in self.messages if m.get("role") == "system")

    def first_user_text(self) -> str:
        for message in self.messages:
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""

    def assistant_turns(self) -> int:
        return sum(1 for m in self.messages if m.get("role") == "assistant")

    def tool_results(self) -> list[dict]:
        """Every ``tool`` message as ``{"tool_call_id", "content"}`` (content as text)."""
        return [{"tool_call_id": m.get("tool_call_id"), "content": _text_of(m.get("content"))}
                for m in self.messages if m.get("role") == "tool"]

    def images(self) -> list[Image]:
        """Every ``image_url`` data URL in the messages, decoded."""
        found = []
        for i, message in enumerate(self.messages):
            content = message.get("content")
            for j, part in enumerate(content if isinstance(content, list) else []):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    mime, data = decode_data_url(part["image_url"]["url"])
                    found.append(Image(mime, data, f"messages[{i}].content[{j}]"))
        return found


@dataclass
class Reply:
    """A scripted model answer (``content`` / ``tool_calls``) or an HTTP error (``error``)."""

    content: str | None = None
    tool_calls: list[tuple[str, Any, Any]] = field(default_factory=list)  # (name, args, id)
    reasoning: str | None = None
    usage: dict | None = None  # usage overrides
    finish_reason: str | None = None  # None: "tool_calls" when there are calls, else "stop"
    error: tuple[int, str, str | None] | None = None  # (code, message, type)
    headers: dict = field(default_factory=dict)
    undeclared_ok: bool = False  # may call tools the request does not declare


class reply:
    """Builders for script steps.  ``reasoning`` adds ``reasoning_content`` to the
    message (vLLM / Ollama thinking models).  ``usage`` overrides usage fields, e.g.
    ``{"prompt_tokens": 10}``."""

    @staticmethod
    def text(text: str, *, reasoning: str | None = None, usage: dict | None = None,
             finish_reason: str = "stop") -> Reply:
        return Reply(content=text, reasoning=reasoning, usage=usage, finish_reason=finish_reason)

    @staticmethod
    def call(name: str, args: dict | str | None = None, *, id: Any = AUTO, text: str | None = None,
             reasoning: str | None = None, usage: dict | None = None, undeclared_ok: bool = False) -> Reply:
        """One tool call.  ``args``: a dict (sent as its JSON) or a raw string sent as
        given, e.g. malformed JSON.  ``id=AUTO``: the server assigns ``call_N_I``;
        ``None`` sends no id (some servers do that)."""
        return reply.calls((name, args if args is not None else {}, id), text=text, reasoning=reasoning,
                           usage=usage, undeclared_ok=undeclared_ok)

    @staticmethod
    def calls(*calls: tuple, text: str | None = None, reasoning: str | None = None,
              usage: dict | None = None, undeclared_ok: bool = False) -> Reply:
        """Parallel calls, each ``(name, args)`` or ``(name, args, id)``.  ``undeclared_ok``:
        allow names the request does not declare (a model that hallucinates a tool)."""
        return Reply(content=text, reasoning=reasoning, usage=usage, undeclared_ok=undeclared_ok,
                     tool_calls=[(name, args, rest[0] if rest else AUTO) for name, args, *rest in calls])

    @staticmethod
    def error(code: int, message: str | None = None, *, type: str | None = None,
              retry_after: float | None = None) -> Reply:
        """An HTTP error.  ``retry_after`` (seconds) sets ``retry-after-ms``, which
        the openai SDK obeys when it retries 429 / 5xx."""
        headers = {"retry-after-ms": str(max(1, round(retry_after * 1000)))} if retry_after is not None else {}
        return Reply(error=(code, message or f"Scripted error {code}.", type), headers=headers)

    @staticmethod
    def by_question(scripts: dict[str, list]) -> Callable[[RecordedRequest], Any]:
        """A router: the script whose key equals (or, longest first, occurs in) the first
        user text; the step is ``script[number of assistant messages in the history]``."""
        return question_router(scripts, turns=RecordedRequest.assistant_turns, turn_word="assistant messages",
                               fail=lambda message: reply.error(500, f"ScriptedOpenAI: {message}"))


class ScriptedOpenAI(ScriptedServer):
    """The server.  ``script``: list of steps (see the module docstring), or ``router``:
    ``callable(request) -> step``.  ``supports_tools=False``: refuse ``tools`` with
    ``tools_error`` (``{model}`` is filled in).  ``supports_images=False``: refuse
    images with ``images_error``.  ``api_key``: the only key accepted (None: any or
    none).  ``models``: the names served (None: any).  ``reasoning_field``: where
    reasoning goes in the message (``reasoning_content``: vLLM; ``reasoning``: Ollama).
    ``reasoning_efforts``: the ``reasoning_effort`` values taken (None: the field is refused)."""

    name, request_kind = "ScriptedOpenAI", "chat completion"
    error_type, reply_type, text_reply = _ApiError, Reply, staticmethod(reply.text)
    requests: list[RecordedRequest]

    def __init__(self, script: list | tuple = (), *, router: Callable[[RecordedRequest], Any] | None = None,
                 supports_tools: bool = True, supports_images: bool = True, api_key: str | None = None,
                 models: list[str] | tuple[str, ...] | None = None,
                 tools_error: str = "registry.ollama.ai/library/{model} does not support tools",
                 images_error: str = "{model} is not a multimodal model",
                 reasoning_field: str = "reasoning_content",
                 reasoning_efforts: tuple[str, ...] | list[str] | None = REASONING_EFFORTS,
                 reasoning_error: str | None = None, host: str = "127.0.0.1", port: int = 0):
        super().__init__(script, router=router, host=host, port=port)
        self.supports_tools, self.supports_images = supports_tools, supports_images
        self.reasoning_efforts = tuple(reasoning_efforts) if reasoning_efforts is not None else None
        self.reasoning_error = reasoning_error
        self.api_key, self.models = api_key, list(models) if models is not None else None
        self.tools_error, self.images_error = tools_error, images_error
        self.reasoning_field = reasoning_field

    @property
    def url(self) -> str:
        """The base URL clients take, ending in ``/v1``."""
        return f"http://{self.address}/v1"

    # -- helpers for tests ---------------------------------------------------------
    @property
    def accepted(self) -> list[RecordedRequest]:
        """The chat-completion requests answered with 200."""
        return [r for r in self.requests if r.status == 200 and r.body is not None]

    # -- HTTP ----------------------------------------------------------------------
    def _record(self, h: BaseHTTPRequestHandler) -> RecordedRequest:
        auth = h.headers.get("Authorization") or ""
        return RecordedRequest(path=urlsplit(h.path).path.rstrip("/"), method=h.command,
                               api_key=auth[7:].strip() if auth.lower().startswith("bearer ") else None)

    def _serve(self, h: BaseHTTPRequestHandler, rec: RecordedRequest, raw: bytes) -> None:
        if self.api_key is not None and rec.api_key != self.api_key:
            shown = (rec.api_key[:3] + "***") if rec.api_key else "(none)"
            raise _ApiError(401, f"Incorrect API key provided: {shown}. You can find your API key "
                            "at https://platform.openai.com/account/api-keys.")
        if h.command == "GET" and rec.path == "/v1/models":
            rec.status, rec.response = 200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in self.models or []]}
        elif h.command == "POST" and rec.path == "/v1/chat/completions":
            rec.body = self._read_json(rec, raw, "We could not parse the JSON body of your request.",
                                       "The request body must be a JSON object.")
            self._validate(rec.body)
            rec.status, rec.response = 200, self._answer(rec)
        else:
            raise _ApiError(404, f"Invalid URL ({h.command} {rec.path})")

    def _respond(self, h: BaseHTTPRequestHandler, rec: RecordedRequest, headers: dict) -> None:
        if rec.status == 500 and rec.error.startswith(f"{self.name}:"):
            headers["x-should-retry"] = "false"  # a script problem: an SDK retry would only hide it
        super()._respond(h, rec, {"x-request-id": f"req_scripted_{len(self.requests):04d}", **headers})

    # -- the script ----------------------------------------------------------------
    def _answer(self, rec: RecordedRequest) -> dict:
        step = self._step(rec)
        if step.error:
            code, message, type_ = step.error
            raise _ApiError(code, message, type_, headers=step.headers)
        body = rec.body or {}
        declared = [(t.get("function") or {}).get("name") for t in body.get("tools") or []]
        served = self._next_serial()
        message: dict = {"role": "assistant", "content": step.content}
        if step.reasoning is not None:
            message[self.reasoning_field] = step.reasoning
        calls = []
        for n, (name, args, call_id) in enumerate(step.tool_calls):
            if name not in declared and not step.undeclared_ok:
                raise _ApiError(500, f"ScriptedOpenAI: the script calls {name!r} but the request declares "
                                f"{'only ' + repr(sorted(declared)) if declared else 'no tools'}.")
            arguments = args if isinstance(args, str) else json.dumps(args)
            call: dict = {"type": "function", "function": {"name": name, "arguments": arguments}}
            if call_id is not None:
                call["id"] = f"call_{served}_{n}" if call_id is AUTO else call_id
            calls.append(call)
        if calls:
            message["tool_calls"] = calls
        finish = step.finish_reason or ("tool_calls" if calls else "stop")
        return {
            "id": f"chatcmpl-scripted-{served:04d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": self._usage(body, step),
            "system_fingerprint": None,
        }

    @staticmethod
    def _usage(body: dict, step: Reply) -> dict:
        prompt = 0
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                prompt += tokens(content)
            for part in content if isinstance(content, list) else []:
                prompt += IMAGE_TOKENS if part.get("type") == "image_url" else tokens(part.get("text") or "")
            for call in message.get("tool_calls") or []:
                prompt += tokens(json.dumps(call.get("function")))
        prompt += sum(tokens(json.dumps(t)) for t in body.get("tools") or [])
        reasoning = tokens(step.reasoning or "")
        output = tokens(step.content or "") + sum(
            tokens(a if isinstance(a, str) else json.dumps(a)) for _, a, _ in step.tool_calls)
        usage = {"prompt_tokens": prompt, "completion_tokens": max(1, output) + reasoning,
                 "completion_tokens_details": {"reasoning_tokens": reasoning}}
        usage.update(step.usage or {})
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        return usage

    # -- validation ----------------------------------------------------------------
    def _validate(self, body: dict) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            _bad("you must provide a model parameter", "model")
        if self.models is not None and model not in self.models:
            raise _ApiError(404, f"The model `{model}` does not exist or you do not have access to it.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            _bad("'messages' must be a non-empty array", "messages")
        for key in ("temperature", "top_p"):
            if key in body and body[key] is not None and (
                    not isinstance(body[key], (int, float)) or isinstance(body[key], bool) or not 0 <= body[key] <= 2):
                _bad(f"Invalid '{key}': expected a number between 0 and 2.", key)
        for key in ("max_tokens", "max_completion_tokens"):
            if body.get(key) is not None and (not isinstance(body[key], int) or body[key] < 1):
                _bad(f"Invalid '{key}': expected an integer >= 1.", key)
        self._check_tools(body)
        self._check_reasoning(body, model)
        pending: dict[str, bool] = {}  # tool_call_id -> answered
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                _bad(f"Invalid type for '{where}': expected an object.", where)
            role = message.get("role")
            if role not in ROLES:
                _bad(f"Invalid value: {role!r}. Supported values are: 'system', 'user', 'assistant' and 'tool'.",
                     f"{where}.role")
            if role == "tool":
                call_id = message.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    _bad(f"Missing required parameter: '{where}.tool_call_id'.", f"{where}.tool_call_id")
                if call_id not in pending:
                    _bad(f"Invalid parameter: messages with role 'tool' must be a response to a preceding "
                         f"message with 'tool_calls' ({where} answers {call_id!r}, which is not pending).",
                         f"{where}.tool_call_id")
                if pending[call_id]:
                    _bad(f"Invalid parameter: tool_call_id {call_id!r} is answered twice ({where}).",
                         f"{where}.tool_call_id")
                pending[call_id] = True
            else:
                self._check_answered(pending, where)
                pending = {}
            self._check_content(message, role, where, model)
            if role == "assistant":
                for call_id in self._check_calls(message, where):
                    if call_id in pending:
                        _bad(f"Duplicate tool call id {call_id!r} in {where}.tool_calls.", f"{where}.tool_calls")
                    pending[call_id] = False
        self._check_answered(pending, "the end of the messages")

    @staticmethod
    def _check_answered(pending: dict[str, bool], where: str) -> None:
        missing = [k for k, answered in pending.items() if not answered]
        if missing:
            _bad("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                 f"'tool_call_id'. The following tool_call_ids did not have response messages before {where}: "
                 f"{', '.join(missing)}", "messages")

    def _check_reasoning(self, body: dict, model: str) -> None:
        """``reasoning_effort`` as OpenAI checks it: refused by a model that takes none (gpt-4o),
        or a value outside the model's list; ``reasoning_error`` words the first refusal instead."""
        if "reasoning_effort" not in body or body["reasoning_effort"] is None:
            return
        value = body["reasoning_effort"]
        if self.reasoning_efforts is None:
            message = (self.reasoning_error or "Unsupported parameter: 'reasoning_effort' is not supported "
                       "with this model.").replace("{model}", model)
            raise _ApiError(400, message, param="reasoning_effort", error_code="unsupported_parameter")
        if not isinstance(value, str) or value not in self.reasoning_efforts:
            listed = ", ".join(repr(v) for v in self.reasoning_efforts)
            raise _ApiError(400, f"Unsupported value: 'reasoning_effort' does not support {value!r} with this "
                            f"model. Supported values are: {listed}.", param="reasoning_effort",
                            error_code="unsupported_value")

    def _check_tools(self, body: dict) -> None:
        tools, choice = body.get("tools"), body.get("tool_choice")
        if (tools or choice is not None) and not self.supports_tools:
            _bad(self.tools_error.format(model=body.get("model")), "tools")
        if tools is None:
            if choice not in (None, "none"):
                _bad("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                     "tool_choice")
            return
        if not isinstance(tools, list) or not tools:
            _bad("Invalid 'tools': empty array. Expected an array with minimum length 1.", "tools")
        names = []
        for k, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
                _bad(f"Invalid value at 'tools[{k}]': expected {{'type': 'function', 'function': {{...}}}}.",
                     f"tools[{k}]")
            name = function.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                _bad(f"Invalid 'tools[{k}].function.name': string does not match pattern '^[a-zA-Z0-9_-]+$'.",
                     f"tools[{k}].function.name")
            parameters = function.get("parameters", {})
            if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
                _bad(f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"'.",
                     f"tools[{k}].function.parameters")
            names.append(name)
        if choice not in (None, "none", "auto", "required"):
            chosen = ((choice or {}).get("function") or {}).get("name") if isinstance(choice, dict) else None
            if chosen not in names:
                _bad(f"Invalid value for 'tool_choice': {choice!r}.", "tool_choice")

    def _check_content(self, message: dict, role: str, where: str, model: str) -> None:
        content = message.get("content")
        if content is None:
            if role == "assistant" and message.get("tool_calls"):
                return
            _bad(f"Missing required parameter: '{where}.content'.", f"{where}.content")
        if isinstance(content, str):
            return
        if not isinstance(content, list) or not content:
            _bad(f"Invalid '{where}.content': expected a string or a non-empty array of content parts.",
                 f"{where}.content")
        for j, part in enumerate(content):
            part_where = f"{where}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    _bad(f"Invalid '{part_where}.text': expected a string.", part_where)
            elif kind == "image_url":
                if role == "tool":  # vLLM: tool messages are text only
                    _bad(f"{part_where}: image content is not supported in tool messages; "
                         "tool message content must be text.", part_where)
                if role != "user":
                    _bad(f"Invalid '{part_where}': image_url parts are only allowed in user messages.", part_where)
                self._check_image(part.get("image_url"), part_where, model)
            else:
                _bad(f"Invalid value: {kind!r}. Supported values are: 'text' and 'image_url'.", f"{part_where}.type")

    def _check_image(self, image_url: Any, where: str, model: str) -> None:
        if not self.supports_images:
            _bad(self.images_error.format(model=model), where)
        url = image_url.get("url") if isinstance(image_url, dict) else None
        if not isinstance(url, str) or not url:
            _bad(f"Missing required parameter: '{where}.image_url.url'.", where)
        if url.startswith(("http://", "https://")):
            _bad(f"{where}: ScriptedOpenAI does not fetch remote image URLs; send a data URL.", where)
        if image_url.get("detail", "auto") not in ("auto", "low", "high"):
            _bad(f"Invalid value for '{where}.image_url.detail': {image_url.get('detail')!r}.", where)
        try:
            mime, data = decode_data_url(url)
        except ValueError as e:
            _bad(f"Invalid image URL at {where}: {e}. Expected 'data:image/<type>;base64,<data>'.", where)
        if not data:
            _bad(f"Invalid image at {where}: the image data is empty.", where)
        if mime not in _IMAGE_TYPES:
            _bad(f"Invalid image at {where}: unsupported image type {mime}; supported: png, jpeg, webp, gif.", where)
        actual = sniff_image(data)
        if actual != mime:
            _bad(f"Invalid image at {where}: the URL declares {mime} but the bytes "
                 f"{'are ' + actual if actual else 'are not a known image format'}.", where)

    @staticmethod
    def _check_calls(message: dict, where: str) -> list[str]:
        calls = message.get("tool_calls")
        if calls is None:
            return []
        if not isinstance(calls, list):
            _bad(f"Invalid type for '{where}.tool_calls': expected an array.", f"{where}.tool_calls")
        ids = []
        for k, call in enumerate(calls):
            call_where = f"{where}.tool_calls[{k}]"
            function = call.get("function") if isinstance(call, dict) else None
            if (not isinstance(call, dict) or call.get("type", "function") != "function"
                    or not isinstance(function, dict)):
                _bad(f"Invalid value at '{call_where}': expected a function tool call.", call_where)
            if not isinstance(call.get("id"), str) or not call["id"]:
                _bad(f"Missing required parameter: '{call_where}.id'.", f"{call_where}.id")
            if not isinstance(function.get("name"), str) or not function["name"]:
                _bad(f"Missing required parameter: '{call_where}.function.name'.", f"{call_where}.function.name")
            if not isinstance(function.get("arguments"), str):
                _bad(f"Invalid type for '{call_where}.function.arguments': expected a string, but got "
                     f"{type(function.get('arguments')).__name__} instead.", f"{call_where}.function.arguments")
            ids.append(call["id"])
        return ids
