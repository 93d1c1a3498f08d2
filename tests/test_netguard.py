"""The suite's network guard (tests/netguard): it refuses a peer outside loopback before
the system call, in the pytest process and in the Python children tests start."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

import agentic_vision_netguard as netguard
from conftest import blocked_connections, can_unshare_net, require

TEST_NET = "192.0.2.1"  # RFC 5737 TEST-NET-1: never routed


def test_a_tcp_connection_out_is_refused_before_the_system_call():
    with socket.socket() as sock:
        sock.setblocking(False)
        with pytest.raises(netguard.BlockedConnection, match=TEST_NET):
            sock.connect((TEST_NET, 80))
        with pytest.raises(netguard.BlockedConnection):
            sock.connect_ex((TEST_NET, 80))
        # connect(2) would have bound the socket to a local port and started a handshake.
        assert sock.getsockname() == ("0.0.0.0", 0)
        with pytest.raises(OSError) as peer:
            sock.getpeername()
        assert not isinstance(peer.value, netguard.BlockedConnection)
    lines = blocked_connections()
    assert len(lines) == 2 and all(f"test_netguard.py::{test_a_tcp_connection_out_is_refused_before_the_system_call.__name__}"
                                   in line and TEST_NET in line for line in lines)


def test_datagrams_and_name_lookups_out_are_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(netguard.BlockedConnection):
            udp.sendto(b"x", (TEST_NET, 53))
        with pytest.raises(netguard.BlockedConnection):
            udp.sendmsg([b"x"], [], 0, (TEST_NET, 53))
        assert udp.getsockname() == ("0.0.0.0", 0)  # sendto(2) would have bound it
    with pytest.raises(netguard.BlockedConnection, match="generativelanguage.googleapis.com"):
        socket.getaddrinfo("generativelanguage.googleapis.com", 443)
    with pytest.raises(netguard.BlockedConnection):
        socket.create_connection(("generativelanguage.googleapis.com", 443), timeout=1)
    assert len(blocked_connections()) == 4


def test_loopback_and_unix_sockets_pass(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname(), timeout=5):
        server.accept()[0].close()
    with socket.create_server(("localhost", 0)) as server, socket.create_connection(("localhost", server.getsockname()[1])):
        pass
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as listener, socket.socket(socket.AF_UNIX) as client:
        listener.bind(path)
        listener.listen()
        client.connect(path)
    assert blocked_connections() == []


def test_a_python_child_is_guarded_too():
    code = f"import socket; socket.create_connection(({TEST_NET!r}, 80), timeout=1)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "BlockedConnection" in done.stderr and TEST_NET in done.stderr
    lines = blocked_connections()
    assert len(lines) == 1 and "in child process" in lines[0] and "test_a_python_child_is_guarded_too" in lines[0]


def test_a_namespace_the_test_made_is_open():
    require(can_unshare_net(), "'unshare -n' (root or user namespaces)")
    # Inside its own (empty) namespace the child's connect reaches the kernel: ENETUNREACH, not the guard.
    code = (f"import socket\ntry:\n    socket.create_connection(({TEST_NET!r}, 80), timeout=1)\n"
            "except OSError as exc:\n    print(type(exc).__name__)")
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "OSError" and "BlockedConnection" not in done.stdout + done.stderr
    assert blocked_connections() == []


def test_asyncio_connections_are_guarded_too():
    import asyncio

    async def connect():
        await asyncio.open_connection(TEST_NET, 80)

    with pytest.raises(netguard.BlockedConnection, match=TEST_NET):
        asyncio.run(connect())
    assert len(blocked_connections()) == 1
