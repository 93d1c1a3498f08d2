"""Who a request comes from: the identity that owns what outlives a request (uploaded files).

Without ``--auth-key`` the key a client sends (its own Gemini key, forwarded) is
its identity.  With ``--auth-key`` every holder of that key is one identity, and
each ``--client-keys`` entry is one more, so a team can share a gateway without
sharing files.  An identity is the HMAC-SHA256 of the key under a secret made
when the gateway starts: the raw key is never stored, and a digest means
nothing outside this process.  A request without a key has no identity and no
stored state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from .errors import GatewayError

MIN_CLIENT_KEY = 16  # characters: a shorter key could be guessed by whoever reaches the port
_KEY = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces, as an HTTP header carries it
_HOW = "(--client-keys FILE, AGENTIC_VISION_CLIENT_KEYS: one key per line, optionally a space and a name)"


@dataclass(frozen=True)
class Client:
    owner: str | None  # the key's digest; None: no key, so nothing is stored for it
    name: str  # for logs: the --client-keys name, or a short form of the digest


def read_client_keys(path: str | Path) -> dict[str, str]:
    """``--client-keys FILE``: ``KEY`` or ``KEY NAME`` per line; blank lines and ``#`` lines skipped.

    Returns key -> name (a line without a name is named by its line number)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the client keys file {path}: {getattr(exc, 'strerror', None) or exc} "
                         f"{_HOW}") from None
    keys: dict[str, str] = {}
    names: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, name = line.partition(" ")
        name = name.strip() or f"line {n}"
        where = f"{path} line {n}"
        if not _KEY.match(key) or len(key) < MIN_CLIENT_KEY:
            raise InputError(f"{where}: a client key must be at least {MIN_CLIENT_KEY} printable characters "
                             f"without spaces {_HOW}")
        if key in keys:
            raise InputError(f"{where}: this key is already the key of {keys[key]!r}; each client needs its own "
                             "key (--client-keys)")
        if name in names:
            raise InputError(f"{where}: the name {name!r} is taken; give each key its own name (--client-keys)")
        keys[key] = name
        names.add(name)
    if not keys:
        raise InputError(f"the client keys file {path} has no keys {_HOW}")
    return keys


class Clients:
    """Checks a request's key (when the gateway authenticates) and names its identity."""

    def __init__(self, auth_key: str | None, client_keys: dict[str, str]) -> None:
        self._secret = secrets.token_bytes(32)
        self.authenticates = bool(auth_key or client_keys)
        self._known: dict[str, str] = {self.digest(k): name for k, name in client_keys.items()}
        if auth_key:
            self._known.setdefault(self.digest(auth_key), "auth key")

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def identify(self, key: str | None) -> Client:
        """The client that sent ``key``; 401/403 when the gateway authenticates and the key is not one of its."""
        if not key:
            if self.authenticates:
                raise GatewayError(401, "this gateway needs an API key: send the gateway's key as x-goog-api-key "
                                   "(the SDKs' api_key) or ?key=.")
            return Client(None, "no key")
        owner = self.digest(key)
        if not self.authenticates:
            return Client(owner, f"key {owner[:8]}")
        # The digest is keyed by a secret of this process, so looking it up leaks nothing about the keys.
        name = self._known.get(owner)
        if name is None:
            raise GatewayError(403, "API key not valid for this gateway. Please pass a valid API key.")
        return Client(owner, name)


def need_owner(client: Client, what: str) -> str:
    """The owner for stored state, or a 401 that says to send a key."""
    if client.owner is None:
        raise GatewayError(401, f"{what} belong to the API key that made them, and this request has none: "
                           "send your API key as x-goog-api-key (the SDKs' api_key) or ?key=.")
    return client.owner
