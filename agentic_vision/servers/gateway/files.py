"""The Files API, held in memory: resumable uploads, get, list, delete.

``client.files.upload()`` starts an upload (``X-Goog-Upload-Command: start``),
then posts the bytes to the absolute ``x-goog-upload-url`` it was given, in
chunks (``upload``, the last ``upload, finalize``).  The Python SDK calls that
URL without its API key, so the URL itself is the credential: it names an
upload by an unguessable token.  Files can then be referenced as
``fileData {fileUri}`` in requests to this gateway.

Every upload and file belongs to the identity that started it (``clients.py``),
as hosted files belong to the key's project: another identity cannot list,
get, download, delete or reference it, and is told it does not exist.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from .errors import GatewayError, bad_request

LIFETIME_S = 48 * 3600  # as the Gemini Files API keeps files
MAX_PENDING_UPLOADS = 256  # started and not finished; each holds its bytes so far
MAX_CLIENT_PENDING_UPLOADS = 32  # of one identity, so one client cannot take them all
_NAME = re.compile(r"(?:^|/)files/([a-z0-9-]{1,40})$")


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StoredFile:
    owner: str
    id: str
    mime_type: str
    data: bytes
    display_name: str | None = None
    created: float = field(default_factory=time.time)

    def metadata(self, base: str) -> dict:
        meta = {"name": f"files/{self.id}", "mimeType": self.mime_type, "sizeBytes": str(len(self.data)),
                "createTime": _stamp(self.created), "updateTime": _stamp(self.created),
                "expirationTime": _stamp(self.created + LIFETIME_S),
                "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
                "uri": f"{base}/v1beta/files/{self.id}", "state": "ACTIVE", "source": "UPLOADED"}
        if self.display_name:
            meta["displayName"] = self.display_name
        return meta


@dataclass
class Upload:
    owner: str
    size: int | None
    mime_type: str
    display_name: str | None
    file_id: str | None
    data: bytearray = field(default_factory=bytearray)


class FileStore:
    def __init__(self, max_file_bytes: int, max_total_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.files: dict[tuple[str, str], StoredFile] = {}  # by (owner, id)
        self.uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, f in self.files.items() if f.created + LIFETIME_S < now]:
            del self.files[key]

    def _held(self) -> int:
        return sum(len(f.data) for f in self.files.values()) + sum(len(u.data) for u in self.uploads.values())

    # -- uploads --------------------------------------------------------------------------

    def start(self, owner: str, headers, body: dict) -> str:
        if headers.get("x-goog-upload-protocol", "").lower() != "resumable" or \
                headers.get("x-goog-upload-command", "").lower() != "start":
            raise bad_request("uploads here are resumable: send X-Goog-Upload-Protocol: resumable and "
                              "X-Goog-Upload-Command: start.")
        meta = body.get("file") or {}
        size_text = headers.get("x-goog-upload-header-content-length") or meta.get("sizeBytes")
        try:
            size = int(size_text) if size_text not in (None, "") else None
        except ValueError:
            raise bad_request("X-Goog-Upload-Header-Content-Length must be a number of bytes.") from None
        if size is not None and size > self.max_file_bytes:
            raise GatewayError(413, f"the file is {size} bytes; this gateway takes files up to "
                               f"{self.max_file_bytes} bytes.")
        mime = headers.get("x-goog-upload-header-content-type") or meta.get("mimeType") or "application/octet-stream"
        file_id = None
        if meta.get("name"):
            match = _NAME.search(str(meta["name"])) or re.fullmatch(r"([a-z0-9-]{1,40})", str(meta["name"]))
            if not match:
                raise bad_request("file.name must be files/ID with lowercase letters, digits and dashes.")
            file_id = match.group(1)
        token = secrets.token_urlsafe(24)
        with self._lock:
            mine = sum(1 for u in self.uploads.values() if u.owner == owner)
            if len(self.uploads) >= MAX_PENDING_UPLOADS or mine >= MAX_CLIENT_PENDING_UPLOADS:
                raise GatewayError(429, f"too many uploads are under way ({mine} of them yours, at most "
                                   f"{MAX_CLIENT_PENDING_UPLOADS} each): finish or cancel some first.", retry_after=5)
            if file_id and (owner, file_id) in self.files:
                raise GatewayError(409, f"a file named files/{file_id} already exists.")
            self.uploads[token] = Upload(owner, size, mime, meta.get("displayName"), file_id)
        return token

    def chunk(self, token: str, headers, data: bytes) -> StoredFile | int:
        """Takes one chunk; the finished file on finalize, else the bytes received so far."""
        command = {c.strip() for c in headers.get("x-goog-upload-command", "").lower().split(",")}
        with self._lock:
            upload = self.uploads.get(token)
            if upload is None:
                raise GatewayError(404, "no such upload: it finished, was cancelled, or the URL is wrong.")
            if "cancel" in command:
                del self.uploads[token]
                return 0
            if "query" in command:
                return len(upload.data)
            if "upload" in command:
                offset = headers.get("x-goog-upload-offset")
                if offset is None or not offset.isdigit() or int(offset) != len(upload.data):
                    raise bad_request(f"X-Goog-Upload-Offset must be {len(upload.data)}, the bytes received.")
                if len(upload.data) + len(data) > min(self.max_file_bytes, upload.size or self.max_file_bytes):
                    del self.uploads[token]
                    raise GatewayError(413, "the upload is larger than announced or than this gateway takes.")
                if self._held() + len(data) > self.max_total_bytes:
                    raise GatewayError(429, "the gateway holds too many uploaded files: delete some first.")
                upload.data += data
            if "finalize" not in command:
                return len(upload.data)
            if upload.size is not None and len(upload.data) != upload.size:
                raise bad_request(f"the upload has {len(upload.data)} bytes, {upload.size} were announced.")
            del self.uploads[token]
            self._expire()
            file_id = upload.file_id or secrets.token_hex(6)
            if (upload.owner, file_id) in self.files:
                raise GatewayError(409, f"a file named files/{file_id} already exists.")
            stored = StoredFile(upload.owner, file_id, upload.mime_type, bytes(upload.data), upload.display_name)
            self.files[(upload.owner, file_id)] = stored
            return stored

    # -- files ----------------------------------------------------------------------------

    def get(self, owner: str, file_id: str) -> StoredFile:
        with self._lock:
            self._expire()
            stored = self.files.get((owner, file_id))
        if stored is None:
            raise GatewayError(404, f"File files/{file_id} does not exist or was deleted.")
        return stored

    def delete(self, owner: str, file_id: str) -> None:
        with self._lock:
            if self.files.pop((owner, file_id), None) is None:
                raise GatewayError(404, f"File files/{file_id} does not exist or was deleted.")

    def list(self, owner: str) -> list[StoredFile]:
        with self._lock:
            self._expire()
            return sorted((f for f in self.files.values() if f.owner == owner), key=lambda f: f.created,
                          reverse=True)

    def lookup_for(self, owner: str | None) -> Callable[[str], tuple[str, bytes] | None]:
        """For ``owner``'s requests: ``fileData.fileUri`` (a URI this gateway gave, or ``files/ID``)
        -> (mime type, bytes), or None when ``owner`` has no such file (no owner: none at all)."""
        def lookup(uri: str) -> tuple[str, bytes] | None:
            match = _NAME.search(uri or "") if owner is not None else None
            if not match:
                return None
            with self._lock:
                stored = self.files.get((owner, match.group(1)))
            return None if stored is None else (stored.mime_type, stored.data)
        return lookup
