"""Is the model API reachable at all?  Asked once, before any sandbox starts.

The SDKs retry connection errors with backoff (half a minute of silence for
a wrong base URL or no network) and end in a long traceback; one TCP
connect with a short timeout tells the same in seconds, and the message
names the URL and the setting that chose it.  Proxies from the environment
are honoured: then the proxy is what must answer.
"""

from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlsplit

from ..errors import ModelError

CONNECT_TIMEOUT = 5.0


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    scheme = parts.scheme or "https"
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme)
    if proxy and parts.hostname and not urllib.request.proxy_bypass(parts.hostname):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return p.hostname or "", p.port or 80, f" through the proxy {proxy}"
    return parts.hostname or "", parts.port or (443 if scheme == "https" else 80), ""


def check_reachable(url: str, setting: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """ModelError (one line naming ``url`` and ``setting``) when nothing answers there."""
    host, port, via = _target(url)
    if not host:
        raise ModelError(f"the model API URL {url!r} has no host: check {setting}")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror:
        raise ModelError(f"cannot reach the model API at {url}{via}: the name {host} does not resolve "
                         f"(check {setting})") from None
    except (socket.timeout, TimeoutError):
        raise ModelError(f"cannot reach the model API at {url}{via}: no answer within {timeout:g} s "
                         f"(check {setting})") from None
    except OSError as exc:
        raise ModelError(f"cannot reach the model API at {url}{via}: {exc.strerror or exc} "
                         f"(check {setting})") from None
