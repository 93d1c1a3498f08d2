"""The MCP tools: run_python, add_files, add_image, list_files, reset_session, share_session, ask.

Every refusal and every failure is a tool result with ``isError`` and a
line that says what to do, never a protocol error: the client's model reads
it and can react.  Names and argument schemas are part of the interface.
"""

import base64
import binascii
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ToolAnnotations
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import Field

from ...errors import AgenticVisionError, InputError
from ...inputs import prepare_image
from ...loop.agent import Agent
from ...sandboxing.session import MAX_INPUT_BYTES, InputFile
from ...trace import write_trace
from .access import FileAccess
from .config import ServerConfig
from .results import ask_result, execution_result, refusal, text_result
from .sessions import DEFAULT, ManagedSession, SessionRegistry, check_name, in_thread, is_token

# Guard-friendly (no leading underscores) and leaves no names behind.
LISTING = """
def agentic_vision_listing():
    import os, json
    entries = []
    for root, dirs, files in os.walk('.'):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)[2:]
            try:
                entries.append([path, os.path.getsize(path)])
            except OSError:
                pass
    return json.dumps(entries[:500])
print(agentic_vision_listing())
del agentic_vision_listing
"""

NO_STATE = ("this stateless request keeps no state between calls: call share_session for a session token and "
            "pass it as session to keep files and variables (or connect with the initialize handshake)")
NO_OWNER = ("session {name!r}: a stateless request has no connection to own a named session; call share_session "
            "and pass the token it returns as session (or connect with the initialize handshake)")
UNKNOWN_TOKEN = ("no open session has this token: it was closed (reset_session or the idle timeout) or is wrong; "
                 "share_session makes a new one")


class AskCancelled(Exception):
    """Raised inside the loop's thread once the client cancelled the ask."""


@dataclass
class ServerState:
    config: ServerConfig
    access: FileAccess
    registry: SessionRegistry
    transport: str  # "stdio" or "streamable-http"

    def owner(self, ctx: Context) -> str | None:
        """Who owns the sessions this call names; None for a stateless HTTP request."""
        if self.transport == "stdio":
            return "stdio"  # the process serves one client
        # Only a connection made with the initialize handshake has an owner: the SDK's session
        # manager answered 404 to any Mcp-Session-Id it did not issue. A stateless (2026-07-28)
        # request reaches the tools without that check, so its headers are client input only.
        if ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return None
        connection = (ctx.headers or {}).get("mcp-session-id")
        return f"http:{connection}" if connection else None

    def key(self, ctx: Context, session: str | None) -> tuple[str, str] | None:
        """Where the call's session lives; None: a stateless request without a session."""
        if is_token(session):
            key = self.registry.shared_key(session)
            if key is None:
                raise InputError(UNKNOWN_TOKEN)
            return key
        owner = self.owner(ctx)
        if owner is None:
            if session is None:
                return None
            raise InputError(NO_OWNER.format(name=check_name(session)))
        return (owner, DEFAULT if session is None else check_name(session))


SessionArg = Annotated[
    str | None,
    Field(description="A name of your choice for one of this connection's own sandbox sessions (omit for its "
                      "default session), or a token from share_session to reach a shared one. Another client "
                      "naming the same name gets a session of its own."),
]


def register_tools(app: MCPServer, state: ServerState) -> None:
    cfg, access, registry = state.config, state.access, state.registry

    async def session_call(ctx: Context, session: str | None, work, *, may_be_one_off: bool = False):
        """Runs ``work(managed, cancelled)`` with the call's session locked; cancellable."""
        key = state.key(ctx, session)
        if key is None and not may_be_one_off:
            raise InputError(NO_STATE)
        holder: dict = {}

        def locked(cancelled):
            managed = registry.get_or_open(key) if key is not None else registry.one_off()
            holder["session"] = managed
            try:
                with managed.lock:
                    holder["started"] = True
                    if cancelled():
                        return None
                    try:
                        return work(managed, cancelled)
                    finally:
                        managed.last_used = time.monotonic()
            finally:
                if key is None:
                    managed.sandbox.close()
                    registry.release()

        def stop():
            managed = holder.get("session")
            if managed is not None and holder.get("started"):
                managed.sandbox.interrupt()

        return await in_thread(locked, stop), key

    @app.tool(annotations=ToolAnnotations(title="Run Python in the sandbox", open_world_hint=False))
    async def run_python(
        code: Annotated[str, Field(description="Python source. Images the code shows (PIL Image.show(), "
                                               "plt.show(), display()) come back as image content.")],
        ctx: Context,
        files: Annotated[list[str] | None, Field(description="Host file paths to copy into the working "
                                                             "directory first (only from the server's allowed directories).")] = None,
        timeout: Annotated[float | None, Field(description=f"Seconds before the run is stopped; at most {cfg.timeout:g}.")] = None,
        session: SessionArg = None,
    ) -> CallToolResult:
        """Run Python in a sandbox session. Variables, imports and files persist between calls in the same
        session, like a notebook. The first line of the result is the outcome (OUTCOME_OK, OUTCOME_FAILED or
        OUTCOME_DEADLINE_EXCEEDED), then the output; a failure carries the traceback."""
        if timeout is not None and not 0 < timeout <= cfg.timeout:
            return refusal(f"timeout must be more than 0 and at most {cfg.timeout:g} seconds (the server's limit)")
        try:
            inputs = access.read(files or [])

            def work(managed: ManagedSession, cancelled):
                added = managed.add_files(inputs)
                return managed.sandbox.run(code, timeout), added

            (execution, added), key = await session_call(ctx, session, work, may_be_one_off=True)
        except AgenticVisionError as exc:
            return refusal(str(exc))
        notes = [f"[copied into the working directory: {', '.join(added)}]"] if added else []
        if key is None:
            notes.append(f"[{NO_STATE}]")
        return execution_result(execution, cfg.image_max_side, cfg.max_result_image_bytes, notes)

    @app.tool(annotations=ToolAnnotations(title="Copy host files into the sandbox", open_world_hint=False))
    async def add_files(
        paths: Annotated[list[str], Field(description="Host file paths, only from the server's allowed directories; "
                                                      "each lands in the working directory under its own name.")],
        ctx: Context,
        session: SessionArg = None,
    ) -> CallToolResult:
        """Copy host files into the session's working directory, where the code opens them by name."""
        try:
            inputs = access.read(paths)
            added, _ = await session_call(ctx, session, lambda managed, cancelled: managed.add_files(inputs))
        except AgenticVisionError as exc:
            return refusal(str(exc))
        sizes = {f.name: len(f.data) for f in inputs}
        lines = [f"{name} ({sizes[name]} bytes)" for name in added]
        same = [f.name for f in inputs if f.name not in added]
        text = "added: " + (", ".join(lines) if lines else "nothing new")
        if same:
            text += f"; already there unchanged: {', '.join(same)}"
        return text_result(text)

    @app.tool(annotations=ToolAnnotations(title="Upload an image into the sandbox", open_world_hint=False))
    async def add_image(
        name: Annotated[str, Field(description="File name in the working directory, e.g. photo.jpg.")],
        data: Annotated[str, Field(description="The image file's bytes, base64-encoded.")],
        ctx: Context,
        session: SessionArg = None,
    ) -> CallToolResult:
        """Put an image the client has as bytes (not as a host path) into the session's working directory."""
        try:
            if len(data) > MAX_INPUT_BYTES * 4 // 3 + 4:
                raise InputError(f"the image is over {MAX_INPUT_BYTES // 2**20} MiB")
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise InputError("data is not valid base64") from None
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise InputError(f"name {name!r} must be a plain file name, e.g. photo.jpg")
            prepared = prepare_image(raw, name=name)  # refuses what is not an image
            file = InputFile(prepared.name, prepared.sandbox_data)
            added, _ = await session_call(ctx, session, lambda managed, cancelled: managed.add_files([file]))
        except AgenticVisionError as exc:
            return refusal(str(exc))
        state_note = "added" if added else "already there unchanged"
        return text_result(f"{state_note}: {prepared.name} ({prepared.width}x{prepared.height})")

    @app.tool(annotations=ToolAnnotations(title="List the sandbox's files", read_only_hint=True, open_world_hint=False))
    async def list_files(ctx: Context, session: SessionArg = None) -> CallToolResult:
        """List the files in the session's working directory (inputs and what the code wrote), with sizes."""
        try:
            execution, _ = await session_call(ctx, session, lambda managed, cancelled: managed.sandbox.run(LISTING))
        except AgenticVisionError as exc:
            return refusal(str(exc))
        try:
            entries = json.loads(execution.output) if execution.ok else None
            lines = [f"{str(path)}\t{int(size)} bytes" for path, size in entries]
        except (TypeError, ValueError):
            first = (execution.output.strip().splitlines() or [execution.outcome])[-1]
            return refusal(f"the working directory could not be listed: {first}")
        return text_result("\n".join(lines) + "\n" if lines else "the working directory is empty\n")

    @app.tool(annotations=ToolAnnotations(title="Close a sandbox session", destructive_hint=True, open_world_hint=False))
    async def reset_session(ctx: Context, session: SessionArg = None) -> CallToolResult:
        """Close the session: its sandbox, variables and files are gone; the next call starts a fresh one."""
        try:
            key = state.key(ctx, session)
            if key is None:
                raise InputError(NO_STATE)
        except AgenticVisionError as exc:
            return refusal(str(exc))
        closed = await anyio.to_thread.run_sync(registry.close, key)
        label = "the shared session" if is_token(session) else f"session {key[1]!r}"
        return text_result(f"{label} closed" if closed else f"no {label} was open")

    @app.tool(annotations=ToolAnnotations(title="Share a sandbox session by a token", open_world_hint=False))
    async def share_session(ctx: Context, session: SessionArg = None) -> CallToolResult:
        """Return a token for the session (opened if needed): whoever passes the token as `session`, from any
        connection, reaches its files and variables, so hand it only to whom you mean to share with. A
        stateless request without a session gets a new session and its token. The token lasts as long as the
        session."""
        try:
            key = state.key(ctx, session)
            if key is None:  # a stateless request: a new session that only its token reaches
                key = (f"shared:{secrets.token_hex(16)}", DEFAULT)
            token = await anyio.to_thread.run_sync(registry.share, key)
        except AgenticVisionError as exc:
            return refusal(str(exc))
        return text_result(f"{token}\n[pass session=\"{token}\" to reach this session from any connection; "
                           "whoever has the token reaches its files and variables]\n")

    @app.tool(annotations=ToolAnnotations(title="Ask a vision model that runs code on the images"))
    async def ask(
        question: Annotated[str, Field(description="The question about the images.")],
        images: Annotated[list[str], Field(description="Host image paths, only from the server's allowed directories.")],
        ctx: Context,
        model: Annotated[str | None, Field(description=f"gemini-... (needs GEMINI_API_KEY), openai:NAME or "
                                                       f"ollama:NAME; default {cfg.model}.")] = None,
        max_steps: Annotated[int | None, Field(description=f"Most code runs the model may ask for; at most {cfg.max_steps}.")] = None,
    ) -> CallToolResult:
        """Answer a question about images with the whole Think/Act/Observe loop: the model writes Python that
        crops, zooms or measures, sees the results, and answers. Returns the answer, a line per step and the
        images the code made."""
        if max_steps is not None and not 1 <= max_steps <= cfg.max_steps:
            return refusal(f"max_steps must be between 1 and {cfg.max_steps} (the server's limit)")
        try:
            inputs = access.read(images)
            result = await _run_ask(question, inputs, model or cfg.model, max_steps or cfg.max_steps)
        except AgenticVisionError as exc:
            return refusal(str(exc))
        trace = None
        if cfg.trace_dir is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            trace = str(write_trace(result, cfg.trace_dir / f"ask-{stamp}-{secrets.token_hex(3)}.html"))
        return ask_result(result, cfg.image_max_side, cfg.max_result_image_bytes, trace)

    async def _run_ask(question: str, inputs: list[InputFile], model: str, max_steps: int):
        holder: dict = {}

        def work(cancelled):
            def on_event(event: str, data: dict) -> None:
                if cancelled():
                    raise AskCancelled()

            registry.reserve()  # the loop's sandbox counts like any session
            try:
                agent = Agent(model=model, sandbox=cfg.sandbox, max_steps=max_steps, timeout=cfg.timeout,
                              guard=cfg.guard, on_event=on_event, log=False, memory=False,  # a client's runs are theirs
                              sandbox_options={"pool_size": 0, "docker_host": cfg.docker_host},
                              libraries=cfg.libraries)
                chat = holder["chat"] = agent.chat()
                try:
                    if cancelled():
                        raise AskCancelled()
                    return chat.send(question, images=[(f.name, f.data) for f in inputs])
                finally:
                    chat.close()
            finally:
                registry.release()

        def stop():
            chat = holder.get("chat")
            sandbox = chat.session if chat is not None else None
            if sandbox is not None:
                sandbox.close()

        return await in_thread(work, stop)
