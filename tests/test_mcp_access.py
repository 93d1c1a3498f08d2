"""Which host files MCP clients may copy into the sandbox: hard links, and files that change under the check."""

from __future__ import annotations

import os

import pytest

from agentic_vision.servers.mcp.access import AccessRefused, FileAccess
from mcp_support import http_server, sync_client, text_of


@pytest.fixture
def tree(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir(), outside.mkdir()
    (outside / "secret.txt").write_text("do not read")
    os.link(outside / "secret.txt", allowed / "hard.txt")  # a name inside for a file outside
    (allowed / "plain.txt").write_text("fine")
    return allowed, outside


HARDLINK = ("hard.txt has 2 hard links, and one may be a name here for a file outside the allowed directories, "
            "so it is not read (copy the file instead, or start the server with --allow-hardlinks)")


@pytest.mark.parametrize("allow", [False, True])
def test_a_hard_link_in_an_allowed_directory_is_refused_unless_the_server_allows_hard_links(tree, allow):
    allowed, _ = tree
    flags = ["--allow-hardlinks"] if allow else []
    with http_server("--allow-dir", str(allowed), *flags, cwd=allowed) as (url, _), \
            sync_client(url, mode="legacy") as client:
        run = client.call("run_python", {"code": "print(open('hard.txt').read())", "files": ["hard.txt"]})
        added = client.call("add_files", {"paths": ["plain.txt", "hard.txt"]})
        asked = client.call("ask", {"question": "?", "images": [str(allowed / "hard.txt")]})
        listing = client.call("list_files", {})
    if allow:
        assert text_of(run).startswith("OUTCOME_OK\ndo not read\n")
        assert text_of(added) == "added: plain.txt (4 bytes); already there unchanged: hard.txt"
        return
    for refused in (run, added, asked):  # ask names it by its absolute path
        assert refused.is_error and text_of(refused).endswith(HARDLINK) and "\n" not in text_of(refused)
    assert text_of(run) == HARDLINK
    assert text_of(listing) == "the working directory is empty\n"  # plain.txt was not read either


def test_files_that_change_between_the_check_and_the_read_are_refused(tree):
    allowed, outside = tree
    access = FileAccess([allowed])
    with pytest.raises(AccessRefused, match=r"/allowed/hard.txt has 2 hard links"):
        access.check(str(allowed / "hard.txt"))

    checked = access.check(str(allowed / "plain.txt"))
    os.link(outside / "secret.txt", allowed / "swap.txt")
    os.replace(allowed / "swap.txt", allowed / "plain.txt")  # another file under the checked name
    with pytest.raises(AccessRefused, match=r"^.*plain.txt changed while it was being checked; try again$"):
        access.read_checked([checked])

    (allowed / "grows.txt").write_text("short")
    checked = access.check(str(allowed / "grows.txt"))
    with open(allowed / "grows.txt", "a") as f:
        f.write(" and longer")
    with pytest.raises(AccessRefused, match="grows.txt changed while it was being checked"):
        access.read_checked([checked])

    (allowed / "linked.txt").write_text("one link when checked")
    checked = access.check(str(allowed / "linked.txt"))
    os.link(allowed / "linked.txt", outside / "later.txt")
    with pytest.raises(AccessRefused, match=r"linked.txt has 2 hard links"):
        access.read_checked([checked])

    assert FileAccess([allowed], allow_hardlinks=True).read([str(allowed / "hard.txt")])[0].data == b"do not read"
    fresh = access.check(str(allowed / "grows.txt"))
    assert [f.data for f in access.read_checked([fresh])] == [b"short and longer"]
