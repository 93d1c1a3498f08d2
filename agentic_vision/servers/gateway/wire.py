"""The Gemini wire format: reading request JSON, writing hosted-shape parts.

Clients send camelCase, but the Python SDK sends some nested keys in
snake_case (``mime_type``, ``thought_signature``) and bytes as URL-safe
base64; both are accepted.  What goes out is camelCase with standard base64,
as the Gemini API answers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ...models.base import Usage
from .errors import bad_request

# User data whose keys are the client's own (function arguments, schemas).
_OPAQUE = {"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema",
           "labels"}
_B64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_URL_SAFE = str.maketrans("-_", "+/")
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
               "codeExecutionResult")


def camel(key: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), key)


def normalise(value: Any) -> Any:
    """snake_case keys -> camelCase, recursively, leaving opaque user data alone.

    In place where it can be (only a dict with a snake_case key is rebuilt), so a
    parsed body is not copied whole."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, (list, dict)):
                value[i] = normalise(item)
    elif isinstance(value, dict):
        if any("_" in k for k in value):
            value = {camel(k): v for k, v in value.items()}
        for k, v in value.items():
            if k not in _OPAQUE and isinstance(v, (list, dict)):
                value[k] = normalise(v)
    return value


def parse_json(raw: bytes | bytearray) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid JSON payload received: the body is not JSON.") from None
    except RecursionError:  # memory.shape_cost refuses deep nesting first; this is for direct callers
        raise bad_request("Invalid JSON payload received: nested too deeply.") from None
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON payload received: expected a JSON object.")
    return normalise(body)


def b64decode(text: Any, where: str) -> bytes:
    """Standard or URL-safe base64, padding optional; 400 in Google's words otherwise.

    A long string is copied at most once (to the standard alphabet, or to add the
    padding); binascii reads the rest in place."""
    if isinstance(text, str) and _B64.match(text):
        if "-" in text or "_" in text:
            text = text.translate(_URL_SAFE)
        tail = text[-2:]
        unpadded = len(text) - (len(tail) - len(tail.rstrip("=")))
        if unpadded % 4 != 1:
            if len(text) % 4:
                text = text[:unpadded] + "=" * (-unpadded % 4)
            try:
                return binascii.a2b_base64(text)  # the characters were checked by _B64
            except (binascii.Error, ValueError):
                pass
    raise bad_request(f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed.")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def one_data_field(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise bad_request(f"Invalid value at '{where}': a part must be a JSON object.")
    present = [k for k in DATA_FIELDS if k in part]
    if len(present) != 1:
        raise bad_request(f"{where}: a part needs exactly one of {', '.join(DATA_FIELDS)} "
                          f"(got {', '.join(present) or 'none'}).")
    kind = present[0]
    if not isinstance(part[kind], str if kind == "text" else dict):
        raise bad_request(f"Invalid value at '{where}.{kind}': wrong JSON type.")
    return kind


def signature_of(part: dict, where: str) -> bytes | None:
    value = part.get("thoughtSignature")
    return b64decode(value, f"{where}.thoughtSignature") if value else None


# -- what goes out ---------------------------------------------------------------------------


def _signed(part: dict, signature: bytes | None) -> dict:
    if signature:
        part["thoughtSignature"] = b64(signature)
    return part


def text_part(text: str, signature: bytes | None = None, *, thought: bool = False) -> dict:
    return _signed({"text": text, **({"thought": True} if thought else {})}, signature)


def code_part(code: str, call_id: str, signature: bytes | None = None) -> dict:
    return _signed({"executableCode": {"language": "PYTHON", "code": code, "id": call_id}}, signature)


def result_part(outcome: str, output: str, call_id: str) -> dict:
    return {"codeExecutionResult": {"outcome": outcome, "output": output, "id": call_id}}


def image_part(data: bytes, mime_type: str) -> dict:
    return {"inlineData": {"mimeType": mime_type, "data": b64(data)}}  # never displayName


class UsageTotals:
    """usageMetadata over every upstream call of one request, as hosted billing counts it:
    the first call's prompt is the prompt, later calls' prompts are tool-use prompt."""

    def __init__(self) -> None:
        self.calls = 0
        self.prompt = self.candidates = self.thoughts = self.tool_use = 0

    def add(self, usage: Usage) -> None:
        if self.calls == 0:
            self.prompt += usage.prompt_tokens
        else:
            self.tool_use += usage.prompt_tokens
        self.calls += 1
        self.candidates += usage.output_tokens
        self.thoughts += usage.thoughts_tokens
        self.tool_use += usage.tool_use_prompt_tokens

    def metadata(self) -> dict:
        meta = {"promptTokenCount": self.prompt, "candidatesTokenCount": self.candidates}
        if self.tool_use:
            meta["toolUsePromptTokenCount"] = self.tool_use
        if self.thoughts:
            meta["thoughtsTokenCount"] = self.thoughts
        meta["totalTokenCount"] = self.prompt + self.candidates + self.tool_use + self.thoughts
        return meta


def response_body(parts: list[dict], *, response_id: str, model_version: str, usage: dict,
                  finish_reason: str | None = None) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model_version,
            "responseId": response_id}


def sse_event(body: dict) -> bytes:
    """One server-sent event, exactly as the Gemini API writes it (the Python SDK
    refuses anything but ``data: `` lines; json.dumps keeps it on one line)."""
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
