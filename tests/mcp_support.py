"""Shared by the MCP tests: starting the server as a user would, real images, host processes."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from session_host import is_session_root

import numpy as np
from PIL import Image

from mcp.client.stdio import StdioServerParameters

PYTHON = sys.executable  # the worktree's .venv, with the package installed
ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"run_python", "add_files", "add_image", "list_files", "reset_session", "share_session", "ask"}


def server_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env.update(extra or {})
    return env


def stdio_params(*args: str, cwd: Path, env: dict | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=PYTHON, args=["-m", "agentic_vision.cli", "mcp", "--sandbox", "local", *args],
                                 cwd=str(cwd), env=server_env(env))


@contextmanager
def http_server(*args: str, cwd: Path, env: dict | None = None, sandbox: str = "local"):
    """`agentic-vision mcp --transport streamable-http --port 0`; yields (url, process)."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "agentic_vision.cli", "mcp", "--sandbox", sandbox, "--transport", "streamable-http",
         "--port", "0", *args],
        cwd=cwd, env=server_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        match = re.search(r"serving on (http://\S+)", line)
        assert match, f"no address in {line!r}: {proc.stderr.read() if proc.poll() is not None else ''}"
        yield match.group(1), proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# -- images ------------------------------------------------------------------------------


def save_astronaut(path: Path) -> np.ndarray:
    import skimage.data

    pixels = skimage.data.astronaut()
    Image.fromarray(pixels).save(path)
    return pixels


def decode(block) -> np.ndarray:
    assert block.type == "image"
    with Image.open(io.BytesIO(base64.b64decode(block.data))) as img:
        return np.asarray(img.convert("RGB"))


def text_of(result) -> str:
    return result.content[0].text


# -- host processes, from /proc ------------------------------------------------------------


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process on the host."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue  # a zombie holds no sandbox
        table[int(entry)] = (int(fields[1]), name)
    return table


def descendants(pid: int) -> dict[int, str]:
    table = processes()
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, name) in table.items():
            if ppid == parent and child not in found:
                found[child] = name
                frontier.append(child)
    return found


def sandboxes_of(pid: int) -> set[int]:
    """The local sandbox sessions under pid: their first processes' host pids."""
    return {p for p in descendants(pid) if is_session_root(p)}


def alive(pids) -> set[int]:
    table = processes()
    return {p for p in pids if p in table}


def wait_for(predicate, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def server_pid_under(pid: int, cwd: Path) -> int | None:
    """The MCP server process started (directly or not) by ``pid`` in the directory ``cwd``."""
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            where = os.readlink(f"/proc/{child}/cwd")
        except OSError:
            continue
        if b"mcp" in cmdline and b"agentic_vision.cli" in cmdline and where == str(cwd.resolve()):
            return child
    return None


class SyncClient:
    """An SDK client on an event loop of its own thread, so several tests share one server."""

    def __init__(self, portal, client) -> None:
        self.portal = portal
        self.client = client

    def call(self, tool: str, arguments: dict):
        return self.portal.call(self.client.call_tool, tool, arguments)

    def tools(self) -> dict:
        return {t.name: t for t in self.portal.call(self.client.list_tools).tools}

    def resources(self) -> dict:
        return {str(r.uri): r for r in self.portal.call(self.client.list_resources).resources}

    def read(self, uri: str) -> str:
        return self.portal.call(self.client.read_resource, uri).contents[0].text


@contextmanager
def sync_client(target, headers: dict | None = None, seen: list | None = None, **options):
    """``target``: stdio parameters or an http URL; ``options`` go to ``mcp.Client``.

    Over HTTP, ``headers`` go with every request and ``seen`` collects the headers of every response.
    """
    import anyio.from_thread

    from mcp import Client

    with anyio.from_thread.start_blocking_portal() as portal:
        if headers is None and seen is None:
            with portal.wrap_async_context_manager(Client(target, **options)) as client:
                yield SyncClient(portal, client)
            return
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async def record(response):
            if seen is not None:
                seen.append(response.headers)

        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300),
                                  event_hooks={"response": [record]})
        with portal.wrap_async_context_manager(http):
            transport = streamable_http_client(target, http_client=http)
            with portal.wrap_async_context_manager(Client(transport, **options)) as client:
                yield SyncClient(portal, client)
