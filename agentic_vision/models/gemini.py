"""Gemini through the google-genai SDK.

The model's content is appended to the history exactly as it came (Gemini 3
rejects a function call whose thought signature was dropped).  Images a run
made go inside the function response (multimodal function responses, Gemini
3) or, for models that refuse that, as image parts beside it; ``auto``
starts with the first for Gemini 3 and falls back once on a refusal.
"""

from __future__ import annotations

import enum
import io
import os
import threading
from dataclasses import dataclass, field

import httpx2
from google import genai
from google.genai import errors, types
from PIL import Image as PILImage

from ..errors import InputError, ModelError
from ..values import Outcome
from . import thinking as thinking_levels
from .base import Model, ModelImage, ModelTurn, Observation, ToolCall, ToolSpec, Usage, elided_note, refusal_message
from .gemini_lookup import check_model
from .reach import check_reachable

IMAGE_DELIVERY = ("auto", "function_response", "parts")
# Google's documented placeholder for a function call whose real signature is gone
# (a history rebuilt from other parts); Gemini 3 accepts it where one is required.
DUMMY_SIGNATURE = b"skip_thought_signature_validator"
DEFAULT_URL = "https://generativelanguage.googleapis.com/"


def usage_of(response: types.GenerateContentResponse) -> Usage:
    meta = response.usage_metadata
    if meta is None:
        return Usage()
    return Usage.of(meta.prompt_token_count, meta.candidates_token_count, meta.thoughts_token_count,
                    meta.tool_use_prompt_token_count)


def describe_api_error(exc: errors.APIError, model: str, retries: int) -> str:
    text = (exc.message or str(exc)).strip()
    message = text.splitlines()[0] if text else ""
    return refusal_message(exc.code, message, model=model, key_hint="GEMINI_API_KEY", retries=retries,
                           status=exc.status or "")


def make_client(
    api_key: str | None = None,
    base_url: str | None = None,
    retries: int = 5,
    timeout_s: float = 300,
    retry_delay: float = 1.0,
) -> genai.Client:
    """A client from arguments or the environment (GEMINI_API_KEY / GOOGLE_API_KEY, Vertex AI settings)."""
    vertex = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
    key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if not key and not vertex:
        raise InputError("no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY, or Vertex AI settings)")
    http = types.HttpOptions(
        timeout=int(timeout_s * 1000),
        # 429 and 5xx are retried with exponential backoff by the SDK itself.
        retry_options=types.HttpRetryOptions(attempts=max(1, retries + 1), initial_delay=retry_delay, max_delay=30.0),
    )
    if base_url:
        http.base_url = base_url
    try:
        return genai.Client(api_key=None if vertex else key, http_options=http)
    except ValueError as exc:
        raise InputError(f"cannot set up the Gemini client: {exc}") from None


class GeminiModel(Model):
    def __init__(
        self,
        name: str,
        *,
        client: genai.Client | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        thinking: str | None = "default",
        image_delivery: str = "auto",
        media_resolution: str | None = None,
        temperature: float | None = None,
        retries: int = 5,
        retry_delay: float = 1.0,
        config: types.GenerateContentConfig | None = None,
        tools: list[types.Tool] | None = None,
    ) -> None:
        """``config``: generation settings laid over the loop's own (the gateway passes a
        client's generationConfig and safetySettings this way); ``tools``: Gemini's own
        tools (Google Search, URL context) offered beside the loop's."""
        if image_delivery not in IMAGE_DELIVERY:
            raise InputError(f"image_delivery must be one of {', '.join(IMAGE_DELIVERY)}")
        self.name = name
        self._client = client
        self._client_given = client is not None
        self._checked = False
        self._client_lock = threading.Lock()
        self._client_args = dict(api_key=api_key, base_url=base_url, retries=retries, retry_delay=retry_delay)
        self.thinking = thinking_levels.check(name, thinking)
        self.image_delivery = image_delivery
        self.media_resolution = media_resolution
        self.temperature = temperature
        self.overrides = config
        self.extra_tools = list(tools or [])

    @property
    def client(self) -> genai.Client:
        # One client per model, even when threads (the benchmark) ask at once:
        # a discarded duplicate would close connections another thread uses.
        with self._client_lock:
            if self._client is None:
                self._client = make_client(**self._client_args)
            return self._client

    @property
    def api_url(self) -> tuple[str, str]:
        """(URL, the setting that chose it) of the API this model talks to."""
        if self._client_args["base_url"]:
            return self._client_args["base_url"], "base_url"
        if os.environ.get("GOOGLE_GEMINI_BASE_URL"):
            return os.environ["GOOGLE_GEMINI_BASE_URL"], "GOOGLE_GEMINI_BASE_URL"
        return DEFAULT_URL, "the network connection, or set GOOGLE_GEMINI_BASE_URL"

    def check_ready(self, reachable: bool = True) -> None:
        """Fails early, before any sandbox starts: no key (InputError), an API
        nothing answers at (ModelError, within seconds), a model the API does not
        have (InputError naming the nearest one; see ``gemini_lookup``)."""
        _ = self.client
        if not reachable or self._checked or self._client_given:
            return
        vertex = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
        if not vertex:  # Vertex names its models differently; generateContent will tell
            check_reachable(*self.api_url)
            check_model(self.client, self.name)
        self._checked = True

    def thinking_config(self) -> types.ThinkingConfig | None:
        return thinking_levels.config(self.name, self.thinking)

    def config(self, system: str | None, tools: list[types.Tool], allow_tools: bool = True) -> types.GenerateContentConfig:
        config = types.GenerateContentConfig(
            system_instruction=system,
            tools=tools or None,
            thinking_config=self.thinking_config(),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            temperature=self.temperature,
        )
        if self.media_resolution:
            config.media_resolution = types.MediaResolution(f"MEDIA_RESOLUTION_{self.media_resolution.upper()}")
        if self.overrides is not None:
            for name in self.overrides.model_fields_set - {"tools", "tool_config", "automatic_function_calling"}:
                setattr(config, name, getattr(self.overrides, name))
        if tools and not allow_tools:
            config.tool_config = types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.NONE)
            )
        return config

    def generate(self, contents, config, on_text=None) -> types.GenerateContentResponse:
        """One response; with ``on_text``, streamed, and the text passed on as it comes."""
        try:
            if on_text is None:
                return self.client.models.generate_content(model=self.name, contents=contents, config=config)
            return self._stream(contents, config, on_text)
        except errors.APIError as exc:
            raise ModelError(describe_api_error(exc, self.name, self._client_args["retries"])) from exc
        except (OSError, ValueError, httpx2.HTTPError) as exc:  # connection refused, timeouts, bad responses
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ModelError(f"cannot reach the model API at {self.api_url[0]}: {detail}") from exc

    def _stream(self, contents, config, on_text) -> types.GenerateContentResponse:
        parts, last = [], None
        for chunk in self.client.models.generate_content_stream(model=self.name, contents=contents, config=config):
            last = chunk
            candidate = chunk.candidates[0] if chunk.candidates else None
            for part in (candidate.content.parts if candidate and candidate.content else None) or []:
                parts.append(part)  # kept as they came: signatures stay on their own parts
                if part.text and part.function_call is None:
                    on_text(part.text, bool(part.thought))
        if last is None:
            raise ValueError("the stream ended before any chunk")
        # One response as if unstreamed: every part, the last chunk's (cumulative) usage.
        finish = last.candidates[0].finish_reason if last.candidates else None
        return types.GenerateContentResponse(
            candidates=[types.Candidate(content=types.Content(role="model", parts=parts) if parts else None,
                                        finish_reason=finish)],
            usage_metadata=last.usage_metadata, prompt_feedback=last.prompt_feedback,
            model_version=last.model_version, response_id=last.response_id)

    def start(self, system: str, tool: ToolSpec) -> "GeminiConversation":
        return GeminiConversation(self, system, tool)

    def ask_once(self, text: str, images: list[ModelImage], *, code_execution: bool = False
                 ) -> types.GenerateContentResponse:
        """One request outside a conversation: the images and the text, no system instruction.
        With ``code_execution``, Gemini's own code execution tool, thoughts included."""
        if code_execution:
            config = self.config(None, [types.Tool(code_execution=types.ToolCodeExecution())])
            config.thinking_config = self.thinking_config() or types.ThinkingConfig(include_thoughts=True)
            config.thinking_config.include_thoughts = True
        else:
            config = self.config(None, [])
        return self.generate([user_content(text, images)], config)

    def default_delivery(self) -> str:
        if self.image_delivery != "auto":
            return self.image_delivery
        return "function_response" if self.name.startswith(("gemini-3", "models/gemini-3")) else "parts"


def image_part(image: ModelImage) -> types.Part:
    return types.Part.from_bytes(data=image.data, mime_type=image.mime_type)


def user_content(text: str, images: list[ModelImage]) -> types.Content:
    """The user's turn: each image (after a line naming it, when it has a label), then the text."""
    parts = []
    for image in images:
        if image.label:
            parts.append(types.Part.from_text(text=f"Image {image.label} ({image.width}x{image.height}):"))
        parts.append(image_part(image))
    parts.append(types.Part.from_text(text=text))
    return types.Content(role="user", parts=parts)


def split_text(parts) -> tuple[str, str]:
    """(text, thoughts) of a response's parts: the answer's words and the thinking summary."""
    texts, thoughts = [], []
    for part in parts or []:
        if part.text:
            (thoughts if part.thought else texts).append(part.text)
    return "".join(texts).strip(), "\n".join(thoughts).strip()


def response_parts(response: types.GenerateContentResponse) -> list[types.Part]:
    candidate = response.candidates[0] if response.candidates else None
    content = candidate.content if candidate is not None else None
    return list(content.parts or []) if content is not None else []


def no_answer_reason(response: types.GenerateContentResponse) -> str:
    """Why a response holds no answer: its finish reason or why the prompt was blocked."""
    candidate = response.candidates[0] if response.candidates else None
    feedback = response.prompt_feedback
    why = (candidate.finish_reason if candidate is not None else None) or (
        feedback.block_reason if feedback else None) or "no content"
    return f"the model returned no answer ({why.value if isinstance(why, enum.Enum) else why})"


@dataclass
class HostedTurn:
    """A response of Gemini's own code execution, read: ``steps`` are the runs it made, as
    {"code", "outcome", "output", "images": [{"mime_type", "width", "height"}]}."""

    answer: str | None
    thoughts: str
    steps: list[dict] = field(default_factory=list)


def read_hosted(response: types.GenerateContentResponse) -> HostedTurn:
    """Steps are code/outcome pairs (with the images each made); the answer is the non-thought
    text after the last code part (or, when the model wrote none there, all of its non-thought
    text).  No parts at all is a ModelError."""
    parts = response_parts(response)
    if not parts:
        raise ModelError(no_answer_reason(response))
    steps: list[dict] = []
    thoughts, texts, after = [], [], []
    for part in parts:
        if part.thought:
            if part.text:
                thoughts.append(part.text)
        elif part.executable_code is not None:
            steps.append({"code": part.executable_code.code or "", "outcome": None, "output": "", "images": []})
            after = []
        elif part.code_execution_result is not None:
            result = part.code_execution_result
            if not steps or steps[-1]["outcome"] is not None:
                steps.append({"code": "", "outcome": None, "output": "", "images": []})
            outcome = result.outcome.value if isinstance(result.outcome, enum.Enum) else result.outcome
            steps[-1]["outcome"] = outcome or Outcome.UNSPECIFIED
            steps[-1]["output"] = result.output or ""
            after = []
        elif part.inline_data is not None:
            if steps:
                steps[-1]["images"].append(_image_info(part.inline_data))
            after = []
        elif part.text:
            texts.append(part.text)
            after.append(part.text)
    for step in steps:
        step["outcome"] = step["outcome"] or Outcome.UNSPECIFIED  # code whose result never came
    answer = "".join(after).strip() or "".join(texts).strip() or None
    return HostedTurn(answer=answer, thoughts="\n".join(thoughts).strip(), steps=steps)


def _image_info(blob: types.Blob) -> dict:
    info = {"mime_type": blob.mime_type or ""}
    try:
        with PILImage.open(io.BytesIO(blob.data or b"")) as img:
            info.update(width=img.width, height=img.height)
    except Exception:  # not an image PIL reads: the record keeps its type only
        pass
    return info


class GeminiConversation:
    def __init__(self, model: GeminiModel, system: str, tool: ToolSpec) -> None:
        self.model = model
        self.system = system
        self.tool = tool
        self.tools = [
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name=tool.name, description=tool.description, parameters_json_schema=tool.parameters
                    )
                ]
            )
        ] + model.extra_tools
        self.contents: list[types.Content] = []
        self.delivery = model.default_delivery()
        self.fallback_tried = self.model.image_delivery != "auto"
        # Observation images, oldest first: (content, holder, item, image), where the
        # holder is the FunctionResponse or the Content whose parts hold the item.
        self._observation_images: list[tuple] = []
        self._last_observations: list[Observation] | None = None
        self._last_note: str | None = None

    def add_user(self, text: str, images: list[ModelImage]) -> None:
        self.contents.append(user_content(text, images))
        self._last_observations = None

    def generate(self, *, allow_tools: bool = True, on_text=None) -> ModelTurn:
        config = self.model.config(self.system, self.tools, allow_tools)
        try:
            response = self.model.generate(self.contents, config, on_text)
        except ModelError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, errors.ClientError)
                and cause.code == 400
                and self._last_observations
                and self.delivery == "function_response"
                and not self.fallback_tried
                and any(o.images for o in self._last_observations)
            ):
                # This model refuses images inside function responses: send them beside.
                self.fallback_tried = True
                self.delivery = "parts"
                dropped = self.contents.pop()
                self._observation_images = [e for e in self._observation_images if e[0] is not dropped]
                self.add_observations(self._last_observations, self._last_note)
                return self.generate(allow_tools=allow_tools, on_text=on_text)
            raise
        return self._read(response)

    def _read(self, response) -> ModelTurn:
        if not response_parts(response):
            raise ModelError(no_answer_reason(response))
        content = response.candidates[0].content
        self.contents.append(content)  # exactly as it came: thought signatures included
        turn = ModelTurn(usage=usage_of(response))
        turn.text, turn.thoughts = split_text(content.parts)
        for part in content.parts:
            if part.function_call is not None:
                call = part.function_call
                signature = part.thought_signature
                if call.name != self.tool.name:
                    error = f"there is no tool named {call.name!r}; use {self.tool.name}"
                    turn.calls.append(ToolCall(call.id, "", error=error, name=call.name, signature=signature))
                    continue
                code = (call.args or {}).get("code")
                if not isinstance(code, str):
                    turn.calls.append(ToolCall(call.id, "", error="the call had no 'code' string argument",
                                               signature=signature))
                else:
                    turn.calls.append(ToolCall(call.id, code, signature=signature))
            elif part.thought_signature and not part.thought:
                turn.signature = part.thought_signature
        return turn

    def add_model(self, turn: ModelTurn) -> None:
        parts = []
        if turn.text or (turn.signature and not turn.calls):
            parts.append(types.Part(text=turn.text, thought_signature=turn.signature))
        for n, call in enumerate(turn.calls):
            signature = call.signature or (DUMMY_SIGNATURE if n == 0 else None)
            fc = types.FunctionCall(name=call.name or self.tool.name, args={"code": call.code}, id=call.id)
            parts.append(types.Part(function_call=fc, thought_signature=signature))
        self.contents.append(types.Content(role="model", parts=parts or [types.Part(text="")]))
        self._last_observations = None

    def add_observations(self, observations: list[Observation], note: str | None = None) -> None:
        self._last_observations = observations
        self._last_note = note
        parts: list[types.Part] = []
        extra: list[types.Part] = []
        for obs in observations:
            response = {"outcome": obs.outcome, "output": obs.output}
            if obs.call.error:
                response = {"outcome": Outcome.FAILED, "output": obs.output or obs.call.error}
            name = obs.call.name or self.tool.name
            if self.delivery == "function_response" and obs.images:
                fr_parts = [types.FunctionResponsePart.from_bytes(data=im.data, mime_type=im.mime_type) for im in obs.images]
                part = types.Part.from_function_response(name=name, response=response, parts=fr_parts)
            else:
                if obs.images:
                    response["images"] = f"{len(obs.images)} image(s) follow this response"
                part = types.Part.from_function_response(name=name, response=response)
                extra.extend(image_part(im) for im in obs.images)
            if obs.call.id:
                part.function_response.id = obs.call.id
            parts.append(part)
        tail = [types.Part.from_text(text=note)] if note else []
        content = types.Content(role="user", parts=parts + extra + tail)
        self.contents.append(content)
        # Remember where each image sits, by object, so prune_images can replace it.
        images = iter(im for obs in observations for im in obs.images)
        for part in content.parts:
            fr = part.function_response
            if fr is not None and fr.parts:
                self._observation_images.extend((content, fr, item, next(images)) for item in fr.parts)
            elif part.inline_data is not None:
                self._observation_images.append((content, content, part, next(images)))

    def prune_images(self, keep: int) -> int:
        excess = len(self._observation_images) - keep
        if excess <= 0:
            return 0
        old, self._observation_images = self._observation_images[:excess], self._observation_images[excess:]
        for _, holder, item, image in old:
            if isinstance(holder, types.FunctionResponse):
                holder.parts = [p for p in holder.parts if p is not item] or None
                holder.response = dict(holder.response or {})
                holder.response.setdefault("removed_images", []).append(elided_note(image))
            else:
                i = next(i for i, p in enumerate(holder.parts) if p is item)
                holder.parts[i] = types.Part.from_text(text=elided_note(image))
        return excess
