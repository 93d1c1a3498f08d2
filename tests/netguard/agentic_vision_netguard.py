"""The test suite's network guard: no test reaches anything but loopback.

Installed in the pytest process by tests/conftest.py and, through the
``sitecustomize.py`` beside this file (its folder is put first on PYTHONPATH),
in every Python child a test starts with the inherited environment.  It wraps
the Python socket calls that pick a peer -- ``connect``, ``connect_ex``,
``sendto``, ``sendmsg`` (so asyncio, http.client, httpx, ssl, the SDKs) -- and
the name lookups that would send a DNS query (``getaddrinfo``,
``gethostbyname``).  A peer that is not loopback, not an unspecified address
and not a unix socket is refused *before* the system call, with
``BlockedConnection``, and a line naming the test and the address is appended
to the log file named by AGENTIC_VISION_NETGUARD_LOG; conftest turns every
such line into a failure of the test that was running.

A process inside a network namespace other than the one the suite started in
(``unshare -n``, as the Ray tests run) may connect anywhere: that namespace
was made by the test and has nothing but what the test put there.

Not covered: programs that are not Python (node, ssh, curl, the Docker
engine) and Python children started with a scrubbed environment.  The
sandboxes themselves have no network at all.
"""

from __future__ import annotations

import ipaddress
import os
import socket

LOG_SETTING = "AGENTIC_VISION_NETGUARD_LOG"
NETNS_SETTING = "AGENTIC_VISION_NETGUARD_NETNS"
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class BlockedConnection(PermissionError):
    """A test tried to reach something other than loopback."""


def netns() -> str:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return ""


def _hosts_file_names() -> set[str]:
    names = set()
    try:
        with open("/etc/hosts") as hosts:
            for line in hosts:
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and _is_local_ip(fields[0]):
                    names.update(name.lower() for name in fields[1:])
    except OSError:
        pass
    return names


def _is_local_ip(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _local_names() -> set[str]:
    names = set(LOCAL_NAMES) | _hosts_file_names()
    names.add(socket.gethostname().lower())
    return names


_installed = False
_names: set[str] = set()


def _outside_our_namespace() -> bool:
    home = os.environ.get(NETNS_SETTING)
    return bool(home) and netns() != home


def _who() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    who = current.rsplit(" (", 1)[0] if current else "a test"
    return who if os.environ.get(LOG_SETTING + "_MAIN") == str(os.getpid()) else f"{who} (in child process {os.getpid()})"


def _refuse(what: str, peer) -> None:
    message = (f"network guard: {_who()} tried to {what} {peer!r}; tests may only reach loopback, unix sockets "
               "and network namespaces they made (tests/netguard)")
    log = os.environ.get(LOG_SETTING)
    if log:
        try:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, (message.replace("\n", " ") + "\n").encode())
            finally:
                os.close(fd)
        except OSError:  # still refused; only the report to the pytest process is lost
            pass
    raise BlockedConnection(message)


def _check_peer(sock: socket.socket, address, what: str) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple) or not address:
        return
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if _is_local_ip(host) or (not _looks_numeric(host) and host.lower() in _names):
        return
    if _outside_our_namespace():
        return
    _refuse(what, address)


def _looks_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _check_name(host, what: str) -> None:
    if host is None:
        return
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str) or host == "" or _looks_numeric(host) or host.lower() in _names:
        return
    if _outside_our_namespace():
        return
    _refuse(what, host)


def install(main: bool = False) -> None:
    """Wrap the socket calls (once per process).  ``main``: this is the pytest process itself,
    whose network namespace is the one every other counts from."""
    global _installed, _names
    if _installed:
        return
    _installed = True
    _names = _local_names()
    if main:
        os.environ[NETNS_SETTING] = netns()
        os.environ[LOG_SETTING + "_MAIN"] = str(os.getpid())
    cls = socket.socket
    connect, connect_ex, sendto, sendmsg = cls.connect, cls.connect_ex, cls.sendto, cls.sendmsg

    def guarded_connect(self, address):
        _check_peer(self, address, "connect to")
        return connect(self, address)

    def guarded_connect_ex(self, address):
        _check_peer(self, address, "connect to")
        return connect_ex(self, address)

    def guarded_sendto(self, data, *args):
        if args:
            _check_peer(self, args[-1], "send a datagram to")
        return sendto(self, data, *args)

    def guarded_sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        if address is not None:
            _check_peer(self, address, "send a datagram to")
            return sendmsg(self, buffers, ancdata, flags, address)
        return sendmsg(self, buffers, ancdata, flags)

    cls.connect, cls.connect_ex, cls.sendto, cls.sendmsg = guarded_connect, guarded_connect_ex, guarded_sendto, guarded_sendmsg

    getaddrinfo, gethostbyname, gethostbyname_ex = socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex

    def guarded_getaddrinfo(host, *args, **kwargs):
        _check_name(host, "look up the name")
        return getaddrinfo(host, *args, **kwargs)

    def guarded_gethostbyname(host):
        _check_name(host, "look up the name")
        return gethostbyname(host)

    def guarded_gethostbyname_ex(host):
        _check_name(host, "look up the name")
        return gethostbyname_ex(host)

    socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex = (
        guarded_getaddrinfo, guarded_gethostbyname, guarded_gethostbyname_ex)
