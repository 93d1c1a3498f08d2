"""The MCP server's session registry on real local sandboxes: one sandbox per key, a cap, closing."""

from __future__ import annotations

import threading

import pytest

from agentic_vision.errors import SandboxUnavailable
from agentic_vision.servers.mcp.sessions import SessionLimit, SessionRegistry


def test_concurrent_calls_for_one_session_share_one_sandbox_and_the_cap_holds():
    registry = SessionRegistry("local", timeout=10, max_sessions=2)
    try:
        got = []
        threads = [threading.Thread(target=lambda: got.append(registry.get_or_open(("stdio", "a")))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 3 and len({id(s) for s in got}) == 1 and len(registry) == 1
        other = registry.get_or_open(("stdio", "b"))
        assert other.sandbox.run("print(2)").output == "2\n"
        with pytest.raises(SessionLimit, match="all 2 sandbox sessions this server allows are open"):
            registry.get_or_open(("stdio", "c"))
        with pytest.raises(SessionLimit):
            registry.one_off()
        assert registry.names("stdio") == ["a", "b"]
        assert registry.close(("stdio", "a")) and not registry.close(("stdio", "a"))
        one_off = registry.one_off()  # a slot is free again
        one_off.sandbox.close()
        registry.release()
    finally:
        registry.close_all()
    assert len(registry) == 0
    with pytest.raises(SandboxUnavailable, match="closed"):
        other.sandbox.run("print(1)")  # a closed session never starts another sandbox
