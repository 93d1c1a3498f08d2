"""A request's ``contents`` -> the loop's history and the current question.

Chat clients send the whole conversation back each time, code-execution
parts included: ``executableCode`` becomes a call of the loop's tool (with
the thought signature it came with, or Google's placeholder), the
``codeExecutionResult`` parts after it that call's observation, and the
``inlineData`` after a result the images that run showed.  A streamed turn
comes back as several model contents in a row; they are one turn.  The last
content is the question; every image of every user turn goes into the
sandbox, as hosted code execution sees them all.
"""

from __future__ import annotations

import mimetypes
import secrets
from dataclasses import dataclass, field
from typing import Callable

from ...images import check_output_image, sniff_image, to_model_image
from ...inputs.pdf import is_pdf
from ...loop.agent import PastObservations, PastUser
from ...models.base import ModelTurn, Observation, ToolCall
from ...values import Outcome
from .errors import bad_request
from .wire import b64decode, one_data_field, signature_of

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
# Data files hosted code execution takes besides images (text of any kind).
FILE_TYPES = {"text/csv": ".csv", "text/plain": ".txt", "text/xml": ".xml", "application/xml": ".xml",
              "application/json": ".json", "text/x-python": ".py", "text/javascript": ".js",
              "application/javascript": ".js", "text/x-c++src": ".cpp", "text/x-java": ".java",
              "text/x-typescript": ".ts", "text/markdown": ".md", "text/html": ".html",
              "text/tab-separated-values": ".tsv"}

# fileData lookup: uri -> (mime type, bytes), or None when the gateway holds no such file.
FileLookup = Callable[[str], "tuple[str, bytes] | None"]


@dataclass
class Request:
    history: list = field(default_factory=list)  # PastUser | ModelTurn | PastObservations
    question: str = ""
    images: list = field(default_factory=list)  # of the question's turn: bytes, or (name, bytes) for a PDF
    files: list[tuple[str, bytes]] = field(default_factory=list)  # data files of all user turns


def _merge(contents: list) -> list[dict]:
    """Checked contents, with runs of one role joined (a streamed turn comes back split)."""
    if not isinstance(contents, list) or not contents:
        raise bad_request("* GenerateContentRequest.contents: contents is not specified")
    merged: list[dict] = []
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise bad_request(f"Invalid value at 'contents[{i}]': a content must be a JSON object.")
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            raise bad_request(f"contents[{i}].role: Please use a valid role: user, model. (got {role!r})")
        parts = content.get("parts")
        if not isinstance(parts, list):
            raise bad_request(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must be a list.")
        tagged = [(f"contents[{i}].parts[{j}]", p) for j, p in enumerate(parts)]
        if merged and merged[-1]["role"] == role:
            merged[-1]["parts"] += tagged
        else:
            merged.append({"role": role, "parts": tagged})
    if merged[-1]["role"] != "user":
        raise bad_request("the last content must be the user's turn (role user): nothing to answer.")
    return merged


class _Reader:
    def __init__(self, lookup: FileLookup, max_image_side: int) -> None:
        self.lookup = lookup
        self.max_image_side = max_image_side
        self.request = Request()
        self.files = 0
        self.earlier_images = 0
        self.pdfs = 0

    def blob(self, part: dict, kind: str, where: str) -> tuple[str, bytes]:
        if kind == "inlineData":
            blob = part["inlineData"]
            mime = blob.get("mimeType")
            if not mime or not isinstance(mime, str):
                raise bad_request(f"{where}.inlineData.mimeType: a MIME type is required.")
            data = b64decode(blob.get("data", ""), f"{where}.inlineData.data")
            if not data:
                raise bad_request(f"{where}.inlineData.data: inline data must not be empty.")
            return mime.lower(), data
        uri = str(part["fileData"].get("fileUri") or "")
        found = self.lookup(uri)
        if found is None:
            raise bad_request(f"{where}.fileData: {uri!r} is not a file uploaded to this gateway "
                              "(upload it with the Files API here, or send it as inlineData).")
        return found

    def user(self, parts: list, last: bool) -> None:
        texts, images = [], []
        for where, part in parts:
            kind = one_data_field(part, where)
            if kind == "text":
                if not part.get("thought"):
                    texts.append(part["text"])
            elif kind in ("inlineData", "fileData"):
                mime, data = self.blob(part, kind, where)
                if mime.startswith("image/"):
                    images.append(self.image(mime, data, where))
                elif mime.split(";")[0].strip() == "application/pdf":
                    images.append(self.pdf(data, where))
                else:
                    self.request.files.append(self.data_file(mime, data, where))
            else:
                raise bad_request(f"{where}: a {kind} part cannot be in a user turn of a code-execution request "
                                  "(function calling is not served together with codeExecution).")
        text = "\n".join(t for t in texts if t.strip())
        if last:
            if not text.strip():
                raise bad_request("the last user turn has no text: add the question as a text part.")
            self.request.question, self.request.images = text, images
        else:
            self.request.history.append(PastUser(text or "(images only)", images))

    @staticmethod
    def image(mime: str, data: bytes, where: str) -> bytes:
        if mime not in IMAGE_TYPES:
            raise bad_request(f"{where}: Unsupported MIME type: {mime} (send PNG, JPEG, WEBP or GIF).")
        actual = sniff_image(data)
        if actual != mime:
            raise bad_request(f"{where}: Unable to process input image: mimeType is {mime} but the bytes "
                              f"{'are ' + actual if actual else 'are not an image'}.")
        return data

    def pdf(self, data: bytes, where: str) -> tuple[str, bytes]:
        """A PDF: its pages are rendered (in a jailed process) and shown like images."""
        if not is_pdf(data):
            raise bad_request(f"{where}: Unable to process input document: mimeType is application/pdf but the "
                              "bytes are not a PDF.")
        self.pdfs += 1
        return f"document-{self.pdfs}.pdf", data

    def data_file(self, mime: str, data: bytes, where: str) -> tuple[str, bytes]:
        base = mime.split(";")[0].strip()
        ext = FILE_TYPES.get(base) or (mimetypes.guess_extension(base) if base.startswith("text/") else None)
        if ext is None:
            raise bad_request(f"{where}: Unsupported MIME type: {mime} (code execution takes images and text "
                              "files such as CSV, XML, JSON or source code).")
        self.files += 1
        return f"file-{self.files}{ext}", data

    def model(self, parts: list) -> None:
        history = self.request.history
        turn = ModelTurn()
        results: list[Observation] = []  # of the calls of ``turn``, once its first result came

        def close_step() -> None:
            # Every call gets an answer, so the history stays paired for the backend.
            answered = {id(o.call) for o in results}
            missing = [Observation(c, Outcome.FAILED, "(not run)") for c in turn.calls if id(c) not in answered]
            history.append(PastObservations(results + missing))

        def new_step() -> None:
            nonlocal turn, results
            if results:
                close_step()
                turn, results = ModelTurn(), []

        for where, part in parts:
            kind = one_data_field(part, where)
            signature = signature_of(part, where)
            if kind == "text":
                new_step()
                if part.get("thought"):
                    turn.thoughts += part["text"]
                else:
                    turn.text += part["text"]
                if signature:
                    turn.signature = signature
            elif kind == "executableCode":
                new_step()
                code = part["executableCode"].get("code") or ""
                call_id = part["executableCode"].get("id") or f"av-{secrets.token_hex(4)}"
                turn.calls.append(ToolCall(str(call_id), code, signature=signature))
            elif kind == "codeExecutionResult":
                if not results:
                    history.append(turn)  # the model's step ends where its first result begins
                self.result(part["codeExecutionResult"], where, turn, results)
            elif kind == "inlineData":
                if results:  # an image the last run showed
                    mime, data = self.blob(part, kind, where)
                    results[-1].images.append(self.observed_image(mime, data, where))
            else:
                raise bad_request(f"{where}: a {kind} part cannot be in a model turn of a code-execution "
                                  "request (function calling is not served together with codeExecution).")
        if results:
            close_step()
        elif turn.calls:  # code that never got a result
            history.append(turn)
            close_step()
        elif turn.text or turn.signature or turn.thoughts:
            history.append(turn)

    @staticmethod
    def result(result: dict, where: str, turn: ModelTurn, results: list[Observation]) -> None:
        outcome = result.get("outcome") or Outcome.FAILED
        if outcome not in tuple(Outcome):
            raise bad_request(f"{where}.codeExecutionResult.outcome: unknown outcome {outcome!r}.")
        answered = {id(o.call) for o in results}
        call = next((c for c in turn.calls if result.get("id") and c.id == str(result["id"])), None)
        if call is None:  # no id: the earliest call not yet answered, else the last one
            call = next((c for c in turn.calls if id(c) not in answered), turn.calls[-1] if turn.calls else None)
        if call is None:
            raise bad_request(f"{where}: a codeExecutionResult must follow the executableCode it answers.")
        earlier = next((o for o in results if o.call is call), None)
        if earlier is None:
            results.append(Observation(call, outcome, result.get("output") or ""))
        else:  # one run reported in several results
            earlier.output += result.get("output") or ""
            earlier.outcome = outcome

    def observed_image(self, mime: str, data: bytes, where: str):
        try:
            image = check_output_image(data, mime)
        except ValueError as exc:
            raise bad_request(f"{where}: Unable to process input image: {exc}.") from None
        self.earlier_images += 1
        return to_model_image(image, self.max_image_side, label=f"earlier image {self.earlier_images}")


def read_contents(contents: list, lookup: FileLookup, max_image_side: int = 1536) -> Request:
    reader = _Reader(lookup, max_image_side)
    merged = _merge(contents)
    for n, content in enumerate(merged):
        if content["role"] == "user":
            reader.user(content["parts"], last=n == len(merged) - 1)
        else:
            reader.model(content["parts"])
    return reader.request
