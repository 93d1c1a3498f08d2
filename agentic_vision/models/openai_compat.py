"""OpenAI-compatible chat completions: OpenAI itself, vLLM, Ollama, llama.cpp...

Chosen by the model name: ``openai:gpt-4.1-mini`` (api.openai.com, or any
server given by ``base_url=`` / ``OPENAI_BASE_URL``), ``ollama:qwen2.5vl``
(the local Ollama server, ``OLLAMA_HOST`` or ``http://localhost:11434``).

Tool results are text only on these APIs: each run's output goes back as the
``tool`` message of its call id, and the images it made follow in one ``user``
message as ``image_url`` data URLs.  Servers or models without tool calling use
a text protocol instead: the model writes a fenced ```python block, the loop
runs it, and the results come back as a user message.  ``tool_protocol="auto"``
starts with native tool calling and switches to the text protocol, for good, the
first time the server refuses tools.

The history is kept in a neutral form and rendered for the protocol in use at
each request, so a switch (or pruning an image) never leaves the wire history
inconsistent.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx2
import openai
from PIL import Image as PILImage

from ..errors import InputError, ModelError
from ..images import encode_for_model
from ..values import Outcome
from . import reasoning
from .base import Model, ModelImage, ModelTurn, Observation, ToolCall, ToolSpec, Usage, elided_note, refusal_message
from .reach import check_reachable

TOOL_PROTOCOLS = ("auto", "native", "text")
OPENAI_URL = "https://api.openai.com/v1"
OLLAMA_URL = "http://localhost:11434/v1"
SEND_FORMATS = ("image/png", "image/jpeg", "image/webp")
KEY_PLACEHOLDER = "no-key-needed"  # the SDK insists on a key; local servers ignore it

_UNSET = object()

# Settings that matter for small local models, by kind of server.  "openai" is
# api.openai.com; "server" any other OpenAI-compatible server (vLLM, llama.cpp,
# LM Studio...); "ollama" the ``ollama:`` shortcut.  None: the loop's or the
# server's own default.
DEFAULTS = {
    "openai": dict(max_image_side=None, max_images=None, temperature=None, retries=5, timeout_s=300.0),
    "server": dict(max_image_side=1280, max_images=8, temperature=None, retries=2, timeout_s=600.0),
    "ollama": dict(max_image_side=1024, max_images=4, temperature=0.2, retries=2, timeout_s=600.0),
}

TEXT_PROTOCOL = """\
How to run code: reply with one fenced block of Python, like this:

```python
from PIL import Image
img = Image.open("photo.jpg")
print(img.size)
```

The block runs in the sandbox described below; its printed output and the images it shows \
come back to you in the next message. Write at most one code block per reply and then stop \
to wait for its result. A reply without a ```python block is your final answer: write it in \
plain text."""

TEXT_NO_MORE_CODE = "(No more code will run. Reply with your final answer in plain text, without a code block.)"
TEXT_CONTINUE = ("Write another ```python block to run more code, or reply without a code block "
                 "to give your final answer.")

# Fenced blocks the text protocol runs: ```python / ```py / ```python3, and
# ```tool_code (Gemma's convention).  An unterminated block (the reply was cut)
# runs up to the end.
_FENCE = re.compile(r"```[ \t]*(?:python3?|py|tool_code)[ \t]*\r?\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.I | re.M)
# A 400 that means "this server/model does not do tool calling".  Servers word it
# differently (Ollama: "... does not support tools"; vLLM: '"auto" tool choice
# requires --enable-auto-tool-choice ...'; llama.cpp: "tools param requires
# --jinja flag"), so this is liberal.
_TOOLS_REFUSED = re.compile(r"\btools?\b|tool_choice|tool[ _-]?call|function[ _-]?call", re.I)
_NO_IMAGES = re.compile(
    r"multi-?modal|vision|image[ _-]?input|image_url|does not support (?:the )?images?|images? (?:is|are) not supported"
    r"|not support\w* .*images?|images?.*not (?:supported|allowed|accepted)|missing data required for image", re.I)


def ollama_base_url(host: str | None = None) -> str:
    """``OLLAMA_HOST`` as Ollama reads it (``host``, ``host:port``, ``http://host:port``)
    turned into the OpenAI-compatible base URL, ``http://HOST:PORT/v1``."""
    host = (host if host is not None else os.environ.get("OLLAMA_HOST", "")).strip()
    if not host:
        return OLLAMA_URL
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    hostname = parts.hostname or "localhost"
    if hostname in ("0.0.0.0", "::"):  # a bind-all address: the server is on this machine
        hostname = "localhost"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{hostname}:{port}{path}"


def data_url(image: ModelImage) -> str:
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def fit_image(image: ModelImage, max_side: int | None) -> ModelImage:
    """The image as sent: downscaled to ``max_side`` and in a format all servers take."""
    too_big = max_side is not None and max(image.width, image.height) > max_side
    if not too_big and image.mime_type in SEND_FORMATS:
        return image
    with PILImage.open(io.BytesIO(image.data)) as img:
        img.load()
        return encode_for_model(img, max_side or max(img.size), image.label)


def usage_of(response) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return Usage()
    details = getattr(usage, "completion_tokens_details", None)
    thought = (getattr(details, "reasoning_tokens", None) or 0) if details is not None else 0
    completion = getattr(usage, "completion_tokens", None) or 0
    # completion_tokens includes reasoning on these APIs; Usage keeps them apart, as Gemini does.
    return Usage.of(getattr(usage, "prompt_tokens", None), max(0, completion - thought), thought)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def error_message(exc: openai.APIStatusError) -> str:
    """The server's own message (OpenAI and Ollama nest it in ``error``; vLLM does not)."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(message, dict):
            message = message.get("message")
        if message:
            return _one_line(message if isinstance(message, str) else json.dumps(message))
    if isinstance(body, str) and body.strip():
        return _one_line(body)
    return _one_line(re.sub(r"^Error code: \d+ - ", "", exc.message or str(exc)))


def tools_refused(exc: BaseException) -> bool:
    """Does this error say the server or model does not do tool calling?"""
    return (isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 422, 501)
            and bool(_TOOLS_REFUSED.search(error_message(exc))))


@dataclass
class _Sent:
    """An image in the history: ``sent`` is what goes on the wire; ``elided`` once pruned."""

    sent: ModelImage
    elided: bool = False

    def parts(self, detail: str | None) -> list[dict]:
        if self.elided:
            return [{"type": "text", "text": elided_note(self.sent)}]
        label = self.sent.label or "image"
        url = {"url": data_url(self.sent), **({"detail": detail} if detail else {})}
        return [{"type": "text", "text": f"Image {label} ({self.sent.width}x{self.sent.height}):"},
                {"type": "image_url", "image_url": url}]


@dataclass
class _Call:
    id: str
    name: str
    arguments: str  # as the model sent it
    call: ToolCall


@dataclass
class _Entry:
    kind: str  # "user" | "assistant" | "observations"
    text: str = ""
    images: list[_Sent] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    observations: list[tuple[Observation, list[_Sent]]] = field(default_factory=list)
    protocol: str = "native"  # for assistant entries: the protocol the turn was made in


class OpenAIModel(Model):
    """A model behind an OpenAI-compatible chat-completions API.

    ``name`` is the model as the server knows it (``gpt-4.1-mini``,
    ``Qwen/Qwen2.5-VL-7B-Instruct``, ``qwen2.5vl``); ``self.name`` is the routing
    name (``openai:...`` / ``ollama:...``) that ``get_model`` takes back.
    Settings left out take the defaults of the kind of server (``DEFAULTS``).
    ``thinking``: default, off, minimal, low, medium or high, sent as the request's
    ``reasoning_effort`` (see ``reasoning``).
    """

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        provider: str = "openai",
        client: openai.OpenAI | None = None,
        tool_protocol: str = "auto",
        max_image_side: int | None = _UNSET,  # type: ignore[assignment]
        max_images: int | None = _UNSET,  # type: ignore[assignment]
        temperature: float | None = _UNSET,  # type: ignore[assignment]
        max_tokens: int | None = None,
        retries: int = _UNSET,  # type: ignore[assignment]
        timeout_s: float = _UNSET,  # type: ignore[assignment]
        image_detail: str | None = None,
        extra_body: dict | None = None,
        thinking: str | None = "default",
    ) -> None:
        if not name:
            raise InputError(f"no model name: use {provider}:NAME")
        if provider not in ("openai", "ollama"):
            raise InputError(f"provider must be openai or ollama, not {provider!r}")
        if tool_protocol not in TOOL_PROTOCOLS:
            raise InputError(f"tool_protocol must be one of {', '.join(TOOL_PROTOCOLS)}")
        if image_detail not in (None, "auto", "low", "high"):
            raise InputError("image_detail must be auto, low or high")
        self.model = name
        self.provider = provider
        self.name = f"{provider}:{name}"
        if provider == "ollama":
            self.base_url = (base_url or ollama_base_url()).rstrip("/")
            self.kind = "ollama"
        else:
            self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
            self.kind = "openai" if urlsplit(self.base_url).hostname == "api.openai.com" else "server"
        defaults = DEFAULTS[self.kind]
        pick = lambda value, key: defaults[key] if value is _UNSET else value  # noqa: E731
        self.max_image_side = pick(max_image_side, "max_image_side")
        self.max_images = pick(max_images, "max_images")
        self.temperature = pick(temperature, "temperature")
        self.retries = pick(retries, "retries")
        self.timeout_s = pick(timeout_s, "timeout_s")
        for label, value in (("max_image_side", self.max_image_side), ("max_tokens", max_tokens)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"{label} must be a positive integer")
        if self.max_images is not None and (not isinstance(self.max_images, int) or self.max_images < 0):
            raise InputError("max_images must be a non-negative integer")
        self.max_tokens = max_tokens
        self.tool_protocol = tool_protocol
        self.image_detail = image_detail
        self.extra_body = dict(extra_body or {})
        self.thinking = reasoning.check(self.kind, self.name, thinking)
        self._api_key = api_key
        self._client = client
        self._checked = False
        # "auto" learns once that the server refuses tools; later conversations start in text.
        self.learned_protocol: str | None = None

    @classmethod
    def from_name(cls, prefix: str, rest: str, **options) -> "OpenAIModel":
        """``openai:NAME`` / ``ollama:NAME`` with the options of ``get_model``."""
        allowed = {"base_url", "api_key", "client", "tool_protocol", "max_image_side", "max_images",
                   "temperature", "max_tokens", "retries", "timeout_s", "image_detail", "extra_body", "thinking"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InputError(f"unknown option(s) for {prefix}:NAME models: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(allowed))})")
        return cls(rest, provider=prefix, **options)

    # -- the client ----------------------------------------------------------------
    def api_key(self) -> str:
        if self._api_key:
            return self._api_key
        env = "OLLAMA_API_KEY" if self.kind == "ollama" else "OPENAI_API_KEY"
        key = os.environ.get(env)
        if key:
            return key
        if self.kind == "openai":
            raise InputError("no API key: set OPENAI_API_KEY (or give base_url= for a local OpenAI-compatible server)")
        return KEY_PLACEHOLDER

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            # A short connect timeout: a server that is not there is known in seconds.
            timeout = httpx2.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))
            self._client = openai.OpenAI(api_key=self.api_key(), base_url=self.base_url,
                                         max_retries=self.retries, timeout=timeout)
        return self._client

    def check_ready(self, reachable: bool = True) -> None:
        """Fails early, before any sandbox starts: api.openai.com without a key
        (InputError), a server nothing answers at (ModelError, within seconds)."""
        given = self._client is not None
        _ = self.client
        if not reachable or given or self._checked:
            return
        setting = {"ollama": "OLLAMA_HOST, or start the server: ollama serve", "openai": "the network connection",
                   "server": "--base-url / OPENAI_BASE_URL"}[self.kind]
        check_reachable(self.base_url, setting)
        self._checked = True

    def start(self, system: str, tool: ToolSpec) -> "OpenAIConversation":
        return OpenAIConversation(self, system, tool)

    # -- requests ------------------------------------------------------------------
    def complete(self, messages: list[dict], tools: list[dict] | None):
        """One chat completion; API failures become ModelError (one line) with the cause kept."""
        kwargs: dict = {"model": self.model, "messages": messages}
        if tools:
            kwargs["tools"] = tools
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        effort = reasoning.effort(self.thinking)
        if effort is not None:
            kwargs["reasoning_effort"] = effort
        extra = self.request_extra_body()
        if extra:
            kwargs["extra_body"] = extra
        try:
            return self.client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise ModelError(f"no answer from {self.base_url} within {self.timeout_s:g} s: "
                             "the server is busy or the model too slow (raise timeout_s)") from exc
        except openai.APIConnectionError as exc:
            hint = "check the network" if self.kind == "openai" else "is the server running?"
            raise ModelError(f"cannot reach {self.base_url}: {hint}") from exc
        except openai.APIStatusError as exc:
            raise ModelError(self.describe(exc, sent_tools=bool(tools))) from exc
        except openai.OpenAIError as exc:  # e.g. a response that is not JSON
            raise ModelError(f"bad answer from {self.base_url}: {_one_line(str(exc))}") from exc

    def request_extra_body(self) -> dict:
        """``extra_body`` as sent: the thinking fields under the user's own (which win)."""
        extra = reasoning.extra_body(self.kind, self.thinking)
        for key, value in self.extra_body.items():
            both = isinstance(value, dict) and isinstance(extra.get(key), dict)
            extra[key] = {**extra[key], **value} if both else value
        return extra

    def describe(self, exc: openai.APIStatusError, sent_tools: bool = False) -> str:
        code, message = exc.status_code, error_message(exc)
        param = exc.body.get("param") if isinstance(exc.body, dict) else None
        if self.thinking != "default" and reasoning.refused(code, message, param):
            return (f"model {self.model} does not take --thinking {self.thinking} (the server refused "
                    f"reasoning_effort={reasoning.effort(self.thinking)!r}, {code}: {message}): drop --thinking")
        if sent_tools and tools_refused(exc):
            return f"model {self.model} does not support tool calling ({code}): {message}; use tool_protocol='text'"
        if code == 400 and _NO_IMAGES.search(message):
            return f"model {self.model} does not accept images ({code}): {message}"
        env = "OLLAMA_API_KEY" if self.kind == "ollama" else "OPENAI_API_KEY"
        text = refusal_message(code, message, model=self.model, key_hint=f"{env} or api_key=", retries=self.retries,
                               server=self.base_url)
        if code == 404 and self.kind == "ollama":
            text += f"; pull it with: ollama pull {self.model}"
        return text


class OpenAIConversation:
    def __init__(self, model: OpenAIModel, system: str, tool: ToolSpec) -> None:
        self.model = model
        self.system = system
        self.tool = tool
        self.protocol = model.learned_protocol or ("text" if model.tool_protocol == "text" else "native")
        self.history: list[_Entry] = []
        self._observation_images: list[_Sent] = []
        self._calls = 0

    # -- the loop's interface ---------------------------------------------------------
    def add_user(self, text: str, images: list[ModelImage]) -> None:
        self.history.append(_Entry("user", text=text, images=[self._sent(im) for im in images]))

    def add_model(self, turn: ModelTurn) -> None:
        entry = _Entry("assistant", text=turn.text, protocol=self.protocol)
        for call in turn.calls:
            self._calls += 1
            if not call.id:  # set on the call itself, so the observation answering it matches
                call.id = f"call_av_{self._calls}"
            entry.calls.append(_Call(call.id, call.name or self.tool.name, json.dumps({"code": call.code}), call))
        self.history.append(entry)

    def add_observations(self, observations: list[Observation], note: str | None = None) -> None:
        entry = _Entry("observations", text=note or "")
        for obs in observations:
            sent = [self._sent(im) for im in obs.images]
            self._observation_images.extend(sent)
            entry.observations.append((obs, sent))
        self.history.append(entry)

    def prune_images(self, keep: int) -> int:
        if self.model.max_images is not None:
            keep = min(keep, self.model.max_images)
        live = [s for s in self._observation_images if not s.elided]
        excess = len(live) - max(0, keep)
        if excess <= 0:
            return 0
        for sent in live[:excess]:
            sent.elided = True
        return excess

    def generate(self, *, allow_tools: bool = True, on_text=None) -> ModelTurn:
        # on_text is not called: the answer arrives whole (the model's turn is parsed for code blocks).
        native = self.protocol == "native"
        tools = [self._tool_schema()] if native and allow_tools else None
        try:
            response = self.model.complete(self.render(allow_tools), tools)
        except ModelError as exc:
            if tools and self.model.tool_protocol == "auto" and tools_refused(exc.__cause__):
                # The server or model does not do tool calling: the text protocol, for good.
                self.protocol = self.model.learned_protocol = "text"
                return self.generate(allow_tools=allow_tools, on_text=on_text)
            raise
        return self._read(response, allow_tools)

    # -- wire format -----------------------------------------------------------------
    def _sent(self, image: ModelImage) -> _Sent:
        return _Sent(fit_image(image, self.model.max_image_side))

    def _tool_schema(self) -> dict:
        return {"type": "function", "function": {
            "name": self.tool.name, "description": self.tool.description, "parameters": self.tool.parameters}}

    def system_prompt(self) -> str:
        if self.protocol == "native":
            return self.system
        return f"{self.system}\n\n{TEXT_PROTOCOL}\n\nThe sandbox:\n{self.tool.description}"

    def render(self, allow_tools: bool = True) -> list[dict]:
        """The history as chat-completion messages for the protocol in use."""
        detail = self.model.image_detail
        messages: list[dict] = [{"role": "system", "content": self.system_prompt()}]
        for entry in self.history:
            if entry.kind == "user":
                parts = [p for s in entry.images for p in s.parts(detail)]
                self._user(messages, parts + [{"type": "text", "text": entry.text}])
            elif entry.kind == "assistant":
                messages.append(self._assistant(entry))
            elif self.protocol == "native":
                self._native_observations(messages, entry, detail)
            else:
                self._text_observations(messages, entry, detail)
        if self.protocol == "text" and not allow_tools and messages[-1]["role"] == "user":
            last = messages[-1]
            last["content"] = _as_parts(last["content"]) + [{"type": "text", "text": TEXT_NO_MORE_CODE}]
        return messages

    @staticmethod
    def _user(messages: list[dict], parts: list[dict]) -> None:
        """A user message; in a row of user messages (some chat templates refuse that) they merge."""
        content: str | list[dict] = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
        if messages[-1]["role"] == "user":
            messages[-1]["content"] = _as_parts(messages[-1]["content"]) + parts
        else:
            messages.append({"role": "user", "content": content})

    def _assistant(self, entry: _Entry) -> dict:
        if self.protocol == "native" and entry.protocol == "native":
            message: dict = {"role": "assistant", "content": entry.text or None}
            if entry.calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in entry.calls]
            elif not entry.text:
                message["content"] = ""
            return message
        if entry.protocol == "text" or not entry.calls:
            return {"role": "assistant", "content": entry.text}
        # A native turn shown in the text protocol: its calls as the blocks it would have written.
        blocks = [f"```python\n{c.call.code}\n```" for c in entry.calls if c.call.code]
        return {"role": "assistant", "content": "\n\n".join(filter(None, [entry.text, *blocks])) or "(no reply)"}

    def _native_observations(self, messages: list[dict], entry: _Entry, detail: str | None) -> None:
        parts: list[dict] = []
        for obs, sent in entry.observations:
            text = _result_text(obs)
            if sent:
                text += f"\n{len(sent)} image(s) from this run follow in the next message."
                parts.append({"type": "text", "text": f"Images from the run of call {obs.call.id}:"})
                parts += [p for s in sent for p in s.parts(detail)]
            messages.append({"role": "tool", "tool_call_id": obs.call.id, "content": text})
        if entry.text:
            parts.append({"type": "text", "text": entry.text})
        if parts:
            messages.append({"role": "user", "content": parts})

    def _text_observations(self, messages: list[dict], entry: _Entry, detail: str | None) -> None:
        parts: list[dict] = []
        count = len(entry.observations)
        for n, (obs, sent) in enumerate(entry.observations, 1):
            which = f"code block {n} of {count}" if count > 1 else "your code block"
            parts.append({"type": "text", "text": f"Result of {which}:\n{_result_text(obs)}"})
            parts += [p for s in sent for p in s.parts(detail)]
        parts.append({"type": "text", "text": entry.text or TEXT_CONTINUE})
        self._user(messages, parts)

    # -- reading a response -----------------------------------------------------------
    def _read(self, response, allow_tools: bool) -> ModelTurn:
        choices = getattr(response, "choices", None) or []
        if not choices or choices[0].message is None:
            raise ModelError(f"{self.model.base_url} returned no choices for {self.model.model}")
        choice = choices[0]
        message = choice.message
        content = message.content or ""
        thoughts = _reasoning_of(message)
        if self.protocol == "native":
            entry = _Entry("assistant", text=content, protocol="native")
            entry.calls = [self._native_call(tc) for tc in (message.tool_calls or [])]
            text = content.strip()
        else:
            entry = _Entry("assistant", text=content, protocol="text")
            codes = [m.group(1).strip("\r\n") for m in _FENCE.finditer(content)]
            if allow_tools:
                for code in codes:
                    self._calls += 1
                    entry.calls.append(_Call(f"block_{self._calls}", self.tool.name, code, ToolCall(None, code)))
            # The words around the blocks; a forced answer that is only code stays as written.
            text = _FENCE.sub("", content).strip() if codes else content.strip()
            if not text and not allow_tools:
                text = content.strip()
        if not text and not entry.calls:
            why = choice.finish_reason or "no content"
            hint = ": raise max_tokens" if why == "length" else ""
            raise ModelError(f"the model returned an empty answer ({why}){hint}")
        self.history.append(entry)
        return ModelTurn(text=text, thoughts=thoughts, calls=[c.call for c in entry.calls], usage=usage_of(response))

    def _native_call(self, tc) -> _Call:
        self._calls += 1
        function = getattr(tc, "function", None)
        name = getattr(function, "name", None) or ""
        arguments = getattr(function, "arguments", None)
        call_id = getattr(tc, "id", None) or f"call_av_{self._calls}"
        if isinstance(arguments, dict):  # some servers send an object, not a JSON string
            arguments = json.dumps(arguments)
        arguments = arguments if isinstance(arguments, str) else ""
        if name != self.tool.name:
            error = f"there is no tool named {name!r}; use {self.tool.name}"
            call = ToolCall(call_id, "", error=error, name=name or None)
            return _Call(call_id, name or self.tool.name, arguments, call)
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            error = (f"the arguments of the {name} call were not valid JSON ({exc}); "
                     'call it again with arguments like {"code": "print(1)"}')
            return _Call(call_id, name, arguments, ToolCall(call_id, "", error=error))
        code = args.get("code") if isinstance(args, dict) else None
        if not isinstance(code, str) or not code.strip():
            error = f"the {name} call had no 'code' string argument"
            return _Call(call_id, name, arguments, ToolCall(call_id, "", error=error))
        return _Call(call_id, name, arguments, ToolCall(call_id, code))


def _as_parts(content) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _result_text(obs: Observation) -> str:
    if obs.call.error:
        return f"Outcome: {Outcome.FAILED}\nOutput:\n{obs.output or obs.call.error}"
    return f"Outcome: {obs.outcome}\nOutput:\n{obs.output if obs.output.strip() else '(no output)'}"


def _reasoning_of(message) -> str:
    """Thinking text: ``reasoning_content`` (vLLM, DeepSeek) or ``reasoning`` (Ollama, newer vLLM)."""
    extra = getattr(message, "model_extra", None) or {}
    for key in ("reasoning_content", "reasoning"):
        value = getattr(message, key, None) or extra.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""
