"""Clients of one HTTP server are hostile to each other: what one keeps in a session, another never reaches.

Two connections made with the real SDK over streamable HTTP, against `agentic-vision mcp` on 127.0.0.1.
"""

from __future__ import annotations

import secrets

import pytest

from mcp_support import http_server, sync_client, text_of


@pytest.fixture
def server(sandbox_kind, tmp_path):
    with http_server("--timeout", "20", "--max-sessions", "6", cwd=tmp_path, sandbox=sandbox_kind) as (url, proc):
        yield url


def test_a_second_connection_naming_the_first_ones_session_gets_a_fresh_one(server):
    with sync_client(server, mode="legacy") as first, sync_client(server, mode="legacy") as second:
        first.call("run_python", {"code": "secret = 'first client'\nopen('notes.txt', 'w').write('private')",
                                  "session": "work"})
        seen = second.call("run_python", {"code": "print(secret)", "session": "work"})
        files = second.call("list_files", {"session": "work"})
        read = second.call("run_python", {"code": "print(open('notes.txt').read())", "session": "work"})
        second.call("run_python", {"code": "secret = 'second client'", "session": "work"})
        reset = second.call("reset_session", {"session": "work"})
        kept = first.call("run_python", {"code": "print(secret, open('notes.txt').read())", "session": "work"})
    assert seen.is_error and "NameError: name 'secret' is not defined" in text_of(seen)
    assert text_of(files) == "the working directory is empty\n"
    assert read.is_error and "FileNotFoundError" in text_of(read)
    assert text_of(reset) == "session 'work' closed"  # the second client's own
    assert text_of(kept) == "OUTCOME_OK\nfirst client private\n"


def test_a_stateless_request_with_another_connections_session_id_header_gets_nothing_of_it(server):
    """Over 2026-07-28 the SDK checks no Mcp-Session-Id: the header is what the client says, not who it is."""
    seen = []
    with sync_client(server, mode="legacy", seen=seen) as first:
        first.call("run_python", {"code": "secret = 'first client'"})
        session_id = next(h["mcp-session-id"] for h in seen if "mcp-session-id" in h)
        with sync_client(server, headers={"Mcp-Session-Id": session_id}) as forger:
            unnamed = forger.call("run_python", {"code": "print(secret)"})
            named = forger.call("run_python", {"code": "print(secret)", "session": "default"})
        kept = first.call("run_python", {"code": "print(secret)"})
    assert unnamed.is_error and "NameError" in text_of(unnamed)
    assert named.is_error and text_of(named).startswith("session 'default': a stateless request has no connection")
    assert text_of(kept) == "OUTCOME_OK\nfirst client\n"


def test_a_shared_session_is_reached_with_its_token_and_not_with_a_guess(server):
    with sync_client(server, mode="legacy") as owner:
        owner.call("run_python", {"code": "shared = 'hello'\nopen('data.txt', 'w').write('both')",
                                  "session": "work"})
        token = text_of(owner.call("share_session", {"session": "work"})).splitlines()[0]
        again = text_of(owner.call("share_session", {"session": "work"})).splitlines()[0]
        with sync_client(server) as other:  # stateless: the token is its only way in
            reached = other.call("run_python", {"code": "print(shared, open('data.txt').read())",
                                                "session": token})
            other.call("run_python", {"code": "shared = 'changed by the other'", "session": token})
            guessed = other.call("run_python", {"code": "print(shared)",
                                                "session": "shared:" + secrets.token_urlsafe(32)})
            by_name = other.call("run_python", {"code": "print(shared)", "session": "work"})
        seen_by_owner = owner.call("run_python", {"code": "print(shared)", "session": "work"})
        assert text_of(owner.call("reset_session", {"session": token})) == "the shared session closed"
        after = owner.call("list_files", {"session": token})
    assert token.startswith("shared:") and len(token) >= len("shared:") + 43 and again == token
    assert text_of(reached) == "OUTCOME_OK\nhello both\n"
    assert text_of(seen_by_owner) == "OUTCOME_OK\nchanged by the other\n"
    for refused in (guessed, after):
        assert refused.is_error and text_of(refused).startswith("no open session has this token:")
        assert "\n" not in text_of(refused)
    assert by_name.is_error and "call share_session and pass the token" in text_of(by_name)


def test_a_stateless_client_keeps_state_in_a_session_it_shares(server):
    with sync_client(server) as client:
        token = text_of(client.call("share_session", {})).splitlines()[0]
        client.call("run_python", {"code": "kept = 6 * 7", "session": token})
        kept = client.call("run_python", {"code": "print(kept)", "session": token})
        client.call("reset_session", {"session": token})
    assert text_of(kept) == "OUTCOME_OK\n42\n"
