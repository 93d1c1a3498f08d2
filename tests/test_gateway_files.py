"""Every refusal of the gateway's Files API, through the real SDK where it can say it and plain
HTTP for the upload protocol's own steps: the proper status, Google's error shape, and the
gateway keeps serving."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
from google import genai
from google.genai import types

from agentic_vision.servers.gateway import files as files_module
from agentic_vision.testing.gemini_server import ScriptedGemini
from gateway_helpers import MODEL, gateway, image_bytes, raw_request

pytestmark = pytest.mark.timeout(120)
KEY = {"x-goog-api-key": "k"}
PNG = image_bytes()


def client_for(gw) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=gw.url))


def start(gw, size: int | None = len(PNG), name: str | None = None) -> tuple[int, str, dict]:
    """Starts a resumable upload: status, the upload URL's path and query, the error (if any)."""
    headers = {**KEY, "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
               "x-goog-upload-header-content-type": "image/png"}
    if size is not None:
        headers["x-goog-upload-header-content-length"] = str(size)
    body = {"file": {"name": name}} if name else {}
    status, headers, payload = raw_request(gw.url, "POST", "/upload/v1beta/files", body, headers)
    if status != 200:
        return status, "", json.loads(payload)["error"]
    url = urlsplit(headers["x-goog-upload-url"])
    return status, f"{url.path}?{url.query}", {}


def send(gw, where: str, data: bytes, offset: int, command: str = "upload, finalize") -> tuple[int, dict]:
    status, _, payload = raw_request(gw.url, "POST", where, data, {
        "x-goog-upload-command": command, "x-goog-upload-offset": str(offset), "content-type": "image/png"})
    return status, json.loads(payload) if payload else {}


def test_a_file_over_the_limit_is_a_413(tmp_path):
    path = tmp_path / "cup.png"
    path.write_bytes(PNG)
    with gateway(max_file_bytes=len(PNG) - 1) as gw:
        client = client_for(gw)
        with pytest.raises(genai.errors.ClientError) as announced:
            client.files.upload(file=path)
        # Announced small, sent big: the bytes themselves are refused, and the upload ends.
        status, where, _ = start(gw, size=100)
        first = send(gw, where, PNG[:1000], 0, "upload")
        after = send(gw, where, PNG[:10], 0)
        listed = raw_request(gw.url, "GET", "/v1beta/files", headers=KEY)
    assert announced.value.code == 413 and f"takes files up to {len(PNG) - 1} bytes" in announced.value.message
    assert status == 200 and first[0] == 413 and "larger than announced" in first[1]["error"]["message"]
    assert after[0] == 404  # that upload is gone
    assert listed[0] == 200 and json.loads(listed[2]) == {"files": []}


def test_the_gateways_total_is_a_429_until_files_are_deleted(tmp_path):
    path = tmp_path / "cup.png"
    path.write_bytes(PNG)
    with gateway(max_stored_bytes=len(PNG) * 3 // 2) as gw:
        client = client_for(gw)
        first = client.files.upload(file=path)
        with pytest.raises(genai.errors.ClientError) as full:
            client.files.upload(file=path)
        client.files.delete(name=first.name)
        again = client.files.upload(file=path)
    assert full.value.code == 429 and "delete some first" in full.value.message
    assert again.size_bytes == len(PNG)


def test_too_many_uploads_under_way_is_a_429(monkeypatch):
    monkeypatch.setattr(files_module, "MAX_PENDING_UPLOADS", 2)
    with gateway() as gw:
        begun = [start(gw) for _ in range(3)]
        cancelled = send(gw, begun[0][1], b"", 0, "cancel")
        fourth = start(gw)
    assert [b[0] for b in begun] == [200, 200, 429]
    assert begun[2][2]["status"] == "RESOURCE_EXHAUSTED" and "too many uploads are under way (2 of them yours" in begun[2][2]["message"]
    assert cancelled[0] == 200 and fourth[0] == 200


def test_a_name_that_is_taken_is_a_409(tmp_path):
    path = tmp_path / "cup.png"
    path.write_bytes(PNG)
    with gateway() as gw:
        client = client_for(gw)
        named = client.files.upload(file=path, config=types.UploadFileConfig(name="files/cup"))
        with pytest.raises(genai.errors.ClientError) as taken:
            client.files.upload(file=path, config=types.UploadFileConfig(name="files/cup"))
    assert named.name == "files/cup"
    assert taken.value.code == 409 and "files/cup already exists" in taken.value.message


def test_a_wrong_offset_or_size_is_a_400_and_the_upload_can_go_on():
    with gateway() as gw:
        _, where, _ = start(gw)
        ahead = send(gw, where, PNG[:100], 50, "upload")
        taken = send(gw, where, PNG[:100], 0, "upload")
        short = send(gw, where, PNG[100:200], 100)  # finalized with fewer bytes than announced
        done = send(gw, where, PNG[200:], 200)
    assert ahead[0] == 400 and "X-Goog-Upload-Offset must be 0" in ahead[1]["error"]["message"]
    assert taken[0] == 200
    assert short[0] == 400 and f"the upload has 200 bytes, {len(PNG)} were announced" in short[1]["error"]["message"]
    assert done[0] == 200 and done[1]["file"]["sizeBytes"] == str(len(PNG))


def test_files_expire(monkeypatch, tmp_path):
    monkeypatch.setattr(files_module, "LIFETIME_S", 1.0)
    path = tmp_path / "cup.png"
    path.write_bytes(PNG)
    with ScriptedGemini([]) as upstream, gateway(upstream) as gw:
        client = client_for(gw)
        uploaded = client.files.upload(file=path)
        assert client.files.get(name=uploaded.name).name == uploaded.name
        time.sleep(1.5)
        with pytest.raises(genai.errors.ClientError) as gone:
            client.files.get(name=uploaded.name)
        listed = list(client.files.list())
        with pytest.raises(genai.errors.ClientError) as used:
            client.models.generate_content(model=MODEL, contents=[uploaded, "Zoom in."], config=types.GenerateContentConfig(
                tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
    assert gone.value.code == 404 and listed == []
    assert used.value.code == 400 and "is not a file uploaded to this gateway" in used.value.message
    assert upstream.requests == []
