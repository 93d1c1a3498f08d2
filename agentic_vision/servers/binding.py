"""Where a server listens: loopback binds need no credentials, anything else does."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """localhost or a loopback address; a host name may resolve anywhere, so it is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
