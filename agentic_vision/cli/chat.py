"""`agentic-vision chat`: talk to images in the terminal, the sandbox kept between turns.

Each turn streams its steps as `ask` does.  Conversations are in the run log:
`chat -c` continues the last one and `chat --cid ID` a given one, by replaying
its questions and answers; the sandbox restarts with the conversation's input
files and the model is told that earlier variables are gone.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..inputs import DEFAULT_MAX_PIXELS
from ..inputs.urls import is_url
from ..loop.agent import Agent, PastUser
from ..models.base import ModelTurn
from ..paths import state_dir
from ..trace import write_trace
from .docker import docker_host_option, sandbox_option
from .exits import EXIT_USAGE, fail
from .logs import SHORT, plain
from .terminal import echo_untrusted
from .ask_display import AskDisplay
from .readiness import choose_sandbox
from .run_log import run_log_options

HELP = """commands:
  /image PATH   add an image, folder, PDF or URL for the next question
  /file PATH    add a data file for the next question
  /trace FILE   write the last answer's HTML trace
  /reset        start over: a new conversation and a fresh sandbox
  /exit         leave (or Ctrl-D)"""


class _Turn:
    """A finished turn, kept to replay the conversation after an interrupted one."""

    def __init__(self, question: str, images: list, files: list, answer: str | None) -> None:
        self.question, self.images, self.files, self.answer = question, images, files, answer


def _history(turns: list[_Turn]) -> tuple[list, list]:
    history, files = [], []
    for turn in turns:
        history.append(PastUser(turn.question, list(turn.images)))
        history.append(ModelTurn(text=turn.answer or "(no answer)"))
        files.extend(turn.files)
    return history, files


def _stored_turns(cid: str | None) -> tuple[str, list[_Turn]]:
    """The conversation's id and turns from the run log: the last conversation, or the one ``cid`` names."""
    from ..store import db_path, open_store

    if not db_path().exists():
        raise InputError("no conversation to continue: the run log is empty (runs are logged by ask and chat)")
    store = open_store()
    if cid is None:
        latest = store.runs(limit=1)
        if not latest:
            raise InputError("no conversation to continue: the run log is empty (runs are logged by ask and chat)")
        conversation = latest[0].conversation_id
    else:
        conversation = store.run(store.resolve_run(cid)).summary.conversation_id if _is_run(store, cid) else \
            _conversation_by_prefix(store, cid)
    turns = []
    for summary in store.runs(limit=1000, conversation_id=conversation, oldest_first=True):
        run = store.run(summary.id)
        images, files = [], []
        for item in run.inputs:
            data = store.blob(item["sha256"])
            if data is None and item["origin"] and Path(item["origin"]).is_file():
                data = Path(item["origin"]).read_bytes()
            if data is None:
                raise InputError(f"the input {item['name']} of run {summary.id[:SHORT]} is no longer in the run log "
                                 "(pruned) nor at its path: the conversation cannot be continued")
            (images if item["shown_blob"] else files).append((item["name"], data))
        turns.append(_Turn(summary.question, images, files, summary.answer))
    store.close()
    return conversation, turns


def _is_run(store, prefix: str) -> bool:
    try:
        store.resolve_run(prefix)
    except InputError:
        return False
    return True


def _conversation_by_prefix(store, prefix: str) -> str:
    prefix = prefix.strip().lower()
    found = {r.conversation_id for r in store.runs(limit=100000) if r.conversation_id.startswith(prefix)}
    if len(found) != 1:
        raise InputError(f"--cid {prefix}: {'no' if not found else 'more than one'} conversation or run has that id "
                         "(see agentic-vision logs)")
    return found.pop()


def _say_answer(result) -> None:
    echo_untrusted(result.answer or f"(stopped without an answer: {result.stop_reason})")
    for item in result.memory_used:
        click.secho(f"memory {item['id'][:SHORT]} used: {plain(item['text'], 160)}", err=True, dim=True)


def _line_editor() -> None:
    """readline's editing and a history kept between chats, where the platform has it."""
    try:
        import atexit
        import readline
    except ImportError:
        return
    history = state_dir() / "chat_history"
    try:
        readline.read_history_file(history)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(history)
        except OSError:
            pass

    atexit.register(save)


def _check_source(source: str) -> None:
    if not is_url(source) and not Path(source).exists():
        raise InputError(f"file not found: {source}")


@click.command("chat")
@click.argument("images", nargs=-1)
@click.option("--model", default="gemini-3-flash-preview", show_default=True, envvar="AGENTIC_VISION_MODEL", show_envvar=True,
              help="gemini-…, openai:NAME or ollama:NAME.")
@click.option("--base-url", default=None, help="Server for openai:/ollama: models (or OPENAI_BASE_URL).")
@sandbox_option()
@docker_host_option
@click.option("--max-steps", type=click.IntRange(min=1), default=12, show_default=True, help="Code turns per question.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds per code run.")
@click.option("--thinking", type=click.Choice(("default", "off", "minimal", "low", "medium", "high"),
              case_sensitive=False), default="default", show_default=True, help="How much the model thinks.")
@click.option("--no-guard", is_flag=True, help="Skip the RestrictedPython first-pass guard (the OS sandbox still holds).")
@click.option("-c", "--continue", "continue_last", is_flag=True, help="Continue the last logged conversation.")
@click.option("--cid", default=None, metavar="ID", help="Continue this conversation (or the one of this run id).")
@run_log_options
def chat_command(images, model, base_url, sandbox, docker_host, max_steps, timeout, thinking, no_guard,
                 continue_last, cid, no_log, no_memory, memory_items, tags) -> None:
    """Talk about IMAGE... in the terminal; code state is kept between questions (/help for commands)."""
    for source in images:
        try:
            _check_source(source)
        except InputError as exc:
            fail(str(exc), EXIT_USAGE)
    if continue_last and cid:
        raise click.UsageError("give -c or --cid, not both")
    display = AskDisplay(True)
    options = {"thinking": thinking.lower()} if thinking.lower() != "default" else {}
    if base_url:
        options["base_url"] = base_url
    agent = Agent(model=model, sandbox=sandbox, model_options=options, max_steps=max_steps, timeout=timeout,
                  sandbox_options={"docker_host": docker_host} if docker_host else None, on_event=display,
                  guard=not no_guard, max_pixels=DEFAULT_MAX_PIXELS, log=not no_log, memory=not no_memory,
                  memory_items=memory_items, tags=tuple(tags))
    conversation, done = None, []
    if continue_last or cid:
        conversation, done = _stored_turns(cid)
    agent.model.check_ready()  # key and API before any sandbox starts or is set up
    agent.sandbox = choose_sandbox(sandbox, quiet=False, docker_host=docker_host)
    if done:
        click.secho(f"continuing conversation {conversation[:SHORT]}: {len(done)} earlier turn(s), "
                    "the sandbox restarts with their inputs", err=True, dim=True)
    _line_editor()
    click.secho("/help lists the commands; Ctrl-D leaves", err=True, dim=True)
    _repl(agent, display, list(images), conversation, done)


def _new_chat(agent: Agent, conversation: str | None, turns: int):
    chat = agent.chat()
    if conversation:
        chat.recorder.conversation_id = conversation
        chat.recorder.turns = turns
    return chat


def _repl(agent: Agent, display: AskDisplay, pending: list, conversation: str | None, done: list[_Turn]) -> None:
    chat = _new_chat(agent, conversation, len(done))
    pending_files: list = []
    replay = bool(done)
    try:
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                click.echo(err=True)
                return
            except KeyboardInterrupt:
                click.echo("\n(Ctrl-D or /exit leaves)", err=True)
                continue
            if not line:
                continue
            if line.startswith("/"):
                command, _, arg = line.partition(" ")
                arg = arg.strip()
                if command in ("/exit", "/quit"):
                    return
                if command == "/help":
                    click.echo(HELP, err=True)
                elif command in ("/image", "/file") and arg:
                    try:
                        _check_source(arg)
                    except InputError as exc:
                        click.echo(f"agentic-vision: {exc}", err=True)
                        continue
                    (pending if command == "/image" else pending_files).append(arg)
                    click.echo(f"{arg} goes with the next question", err=True)
                elif command == "/trace" and arg:
                    if not chat.results:
                        click.echo("no answer yet to trace", err=True)
                        continue
                    try:
                        write_trace(chat.results[-1], arg)
                    except OSError as exc:
                        click.echo(f"agentic-vision: cannot write {arg}: {exc.strerror or exc}", err=True)
                        continue
                    click.echo(f"trace written to {arg}", err=True)
                elif command == "/reset":
                    chat.close()
                    chat, done, pending, pending_files, replay = _new_chat(agent, None, 0), [], [], [], False
                    click.echo("started over: new conversation, fresh sandbox", err=True)
                else:
                    click.echo(f"unknown command {line!r}\n{HELP}", err=True)
                continue
            history, past_files = _history(done) if replay else ([], [])
            display.begin("reading the inputs, starting the sandbox" if chat.session is None else "model thinking")
            try:
                result = chat.send(line, images=pending, files=[*past_files, *pending_files], history=history,
                                   resumed=replay)
            except KeyboardInterrupt:
                display.close()
                # The conversation's model history has a turn without its results: start again
                # from the turns that finished, as a resumed conversation.
                conversation = chat.recorder.conversation_id
                chat.close()
                chat = _new_chat(agent, conversation, chat.recorder.turns)
                replay = bool(done)
                click.echo("\n(interrupted: the conversation goes on from before this question; "
                           "variables are gone)", err=True)
                continue
            except InputError as exc:
                display.close()
                click.echo(f"agentic-vision: {exc}", err=True)
                pending, pending_files = [], []
                continue
            display.close()
            # Paths and URLs as they were given: a replay reads them again.
            done.append(_Turn(line, list(pending), list(pending_files), result.answer))
            pending, pending_files, replay = [], [], False
            _say_answer(result)
    finally:
        chat.close()
