"""The `agentic-vision` command line.

Every failure a user can fix ends in one line on stderr and a distinct exit
status, never a traceback: 1 the code (or the model) did not succeed, 2 bad
usage or input, 3 the sandbox is unavailable.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path

import click

from ..errors import AgenticVisionError, SandboxUnavailable
from ..inputs import DEFAULT_MAX_PIXELS
from ..inputs.pdf import parse_pages
from ..inputs.urls import is_url
from ..loop.agent import Agent
from ..values import Outcome
from ..models import check_model_name
from ..sandboxing.environment import env_is_current
from ..sandboxing.executors import check_libraries, get_executor
from ..sandboxing.extras import library_set
from ..sandboxing.extras_env import build_layer, environments_info
from ..sandboxing.runtime_files import library_summary
from ..sandboxing.session import Session, open_session
from ..trace import write_trace
from .ask_args import AskCommand
from .bench import bench_command
from .chat import chat_command
from .logs import feedback_command, logs_command, memory_command, remember_command
from .run_log import run_log_options, say_run_log
from .docker import build_command, check_command, docker_host_option, docker_info, engine_line, sandbox_option
from .libraries import describe_installed, extras_from, extras_options, libraries_option
from .exits import EXIT_FAILED, EXIT_SANDBOX, EXIT_USAGE, exit_status, fail, file_error, name_the_variable
from .mcp import mcp_command
from .outputs import check_out_dir, check_out_file
from .ask_display import AskDisplay
from .readiness import choose_sandbox
from .serve import serve_command
from .spinner import Spinner
from .terminal import echo_untrusted
from .setup_progress import build_sandbox_env
from .verbosity import LOG_LEVELS, Verbosity, configure_logging, current as current_verbosity, quiet as quiet_flag

THINKING_LEVELS = ("default", "off", "minimal", "low", "medium", "high")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True,
             no_args_is_help=False)
@click.version_option(None, "-V", "--version", package_name="agentic-vision")
@click.option("-v", "--verbose", count=True, help="Say more: INFO log (-vv: DEBUG), and e.g. pip's log in 'sandbox setup'.")
@click.option("-q", "--quiet", is_flag=True, help="Say nothing but results and errors (every command's --quiet).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None,
              envvar="AGENTIC_VISION_LOG_LEVEL", show_envvar=True,
              help="The log level exactly (default: warning; -v info, -vv debug, -q error).")
@click.pass_context
def cli(ctx, verbose, quiet, log_level) -> None:
    """Code execution with images, on your own machine.

    Shell completion (click's): eval "$(_AGENTIC_VISION_COMPLETE=bash_source agentic-vision)"
    in ~/.bashrc (zsh_source for zsh, fish_source for fish)."""
    if verbose and quiet:
        raise click.UsageError("-v and -q contradict each other; give one")
    ctx.obj = Verbosity(verbose, quiet)
    configure_logging(logging.getLevelNamesMapping()[log_level.upper()] if log_level else ctx.obj.level)
    if ctx.invoked_subcommand is None:  # no command: the help, and success
        click.echo(ctx.get_help())
        ctx.exit(0)


# -- exec -------------------------------------------------------------------------------


def write_images(images, out_dir: Path, stem: str = "image") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images, 1):
        path = out_dir / f"{stem}-{i}{image.extension}"
        n = 1
        while path.exists():  # never overwrite what an earlier run wrote
            n += 1
            path = out_dir / f"{stem}-{i}-{n}{image.extension}"
        path.write_bytes(image.data)
        paths.append(path)
    return paths


@cli.command("exec")
@click.argument("code")
@sandbox_option("Where the code runs (auto: Docker when ready, else local).")
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="A file to put in the working directory (repeatable).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="PIL's image size limit inside, in pixels (default 200 million).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds before the run is stopped.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="agentic-vision-out", show_default=True,
              help="Where images the code produced are written.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the output.")
@click.option("--no-guard", is_flag=True, help="Skip the RestrictedPython first-pass guard (the OS sandbox still holds).")
@docker_host_option
@libraries_option
def exec_command(code, sandbox, inputs, max_pixels, timeout, out_dir, as_json, no_guard, docker_host, libraries) -> None:
    """Run CODE (or - for stdin) in a fresh sandbox session."""
    libs = library_set(libraries)
    if code == "-":
        code = sys.stdin.read()
    for path in inputs:
        if not Path(path).is_file():
            fail(f"input file not found: {path}", EXIT_USAGE)
    out = check_out_dir(out_dir, "--out")  # before the code runs: its images must have somewhere to go
    quiet = quiet_flag() or as_json
    kind = choose_sandbox(sandbox, quiet=quiet, docker_host=docker_host, libraries=libs)
    with open_session(kind, inputs=inputs, timeout=timeout, guard=not no_guard, pool_size=0, libraries=libs,
                      max_pixels=max_pixels or DEFAULT_MAX_PIXELS, docker_host=docker_host) as session:
        if not quiet:
            click.secho(f"sandbox: {kind}", err=True, dim=True)
        streamed: list[str] = []

        def show(stream: str, text: str) -> None:  # the output as it is printed, all of it on stdout
            streamed.append(text)
            echo_untrusted(text, nl=False)

        result = session.run(code, on_output=None if as_json else show)
    try:
        paths = write_images(result.images, out)
    except OSError as exc:
        raise file_error(exc) from None
    if as_json:
        click.echo(json.dumps({
            "sandbox": kind,
            "outcome": result.outcome,
            "output": result.output,
            "images": [
                {"path": str(p), "mime_type": im.mime_type, "width": im.width, "height": im.height,
                 "source": im.source.as_dict() if im.source else None}
                for p, im in zip(paths, result.images)
            ],
            "duration_ms": round(result.duration_s * 1000, 1),
        }))
    else:
        # What the sandbox added after the code's own output (truncation...), less the words
        # that tell the model what it lost: a person gets the line below instead.
        tail = result.output.replace("".join(streamed), "", 1)
        if result.model_note and tail.endswith(result.model_note):
            tail = tail[: -len(result.model_note)]
            tail += "\n" if tail and not tail.endswith("\n") else ""
        echo_untrusted(tail, nl=False)
        for path, image in zip(paths, result.images):
            if not quiet:
                origin = f", from {image.source.describe()}" if image.source else ""
                click.echo(f"[image {image.width}x{image.height} written to {path}{origin}]", err=True)
        if result.outcome == Outcome.DEADLINE_EXCEEDED:
            click.echo(f"agentic-vision: {result.outcome}: the code ran longer than --timeout {timeout:g} s "
                       "and was stopped", err=True)
        elif result.stopped:
            click.echo(f"agentic-vision: {result.outcome}: {result.stopped[0].lower()}{result.stopped[1:]}", err=True)
        elif not result.ok:
            click.echo(f"agentic-vision: {result.outcome}", err=True)
    sys.exit(0 if result.ok else EXIT_FAILED)


# -- ask ----------------------------------------------------------------------------------


@cli.command("ask", cls=AskCommand)
@click.argument("args", nargs=-1, required=True, metavar="IMAGE... QUESTION")
@click.option("--image", "more_images", multiple=True, help="Another image, folder, PDF or URL (repeatable).")
@click.option("--file", "files", multiple=True, help="A data file for the code, e.g. CSV, or its URL (repeatable).")
@click.option("--model", default="gemini-3-flash-preview", show_default=True,
              envvar="AGENTIC_VISION_MODEL", show_envvar=True,
              help="gemini-…, openai:NAME or ollama:NAME.")
@click.option("--base-url", default=None, help="Server for openai:/ollama: models (or OPENAI_BASE_URL).")
@sandbox_option()
@docker_host_option
@click.option("--max-steps", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds per code run.")
@click.option("--thinking", type=click.Choice(THINKING_LEVELS, case_sensitive=False), default="default",
              show_default=True, help="How much the model thinks: Gemini's thinking level or budget, "
              "reasoning_effort for openai:/ollama: models (off: none or the model's lowest; see the README).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Largest input image in pixels, on the host and inside the sandbox (default 200 million).")
@click.option("--page", "pages", default=None, metavar="N|A-B|LIST",
              help="PDF pages to show (e.g. 3, 2-5, 1,4); default: the first 3.")
@click.option("--no-guard", is_flag=True, help="Skip the RestrictedPython first-pass guard (the OS sandbox still holds).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None, help="Write an HTML trace here.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Save every image the code made here (step-N-image-M.png); --json then gives their paths.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the answer.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@run_log_options
@libraries_option
def ask_command(args, more_images, files, model, base_url, sandbox, docker_host, max_steps, timeout, thinking,
                max_pixels, pages, no_guard, trace_path, out_dir, as_json, quiet, no_log, no_memory, memory_items,
                tags, libraries) -> None:
    """Ask QUESTION about IMAGE (files, folders, PDFs or URLs; several allowed); the model
    may run code on them before it answers.  QUESTION - reads it from stdin."""
    quiet = quiet_flag(quiet)
    images, question = list(args[:-1]) + list(more_images), args[-1]
    if pages is not None:
        parse_pages(pages, 10**9, "")  # the syntax now; the page count once the PDF is read
    if not images:
        raise click.UsageError("give at least one image (a file, folder, PDF or URL) before the question")
    if question == "-":
        question = sys.stdin.read().strip()
    for path in [*images, *files]:
        if not is_url(path) and not Path(path).exists():
            fail(f"file not found: {path}", EXIT_USAGE)
    if trace_path:
        check_out_file(trace_path, "--trace")
    if out_dir:
        try:  # before any work: a --out that cannot be used is one line now, not after the answer
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise file_error(exc) from None
    options = {}
    if thinking.lower() != "default":
        options["thinking"] = thinking.lower()
    if base_url:
        options["base_url"] = base_url
    check_model_name(model, cli=True)  # what to write, in the command line's words
    progress = AskDisplay(not quiet and not as_json)
    agent = Agent(model=model, sandbox=sandbox, model_options=options, max_steps=max_steps, timeout=timeout,
                  sandbox_options={"docker_host": docker_host} if docker_host else None, libraries=libraries,
                  on_event=progress, guard=not no_guard, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, pages=pages,
                  log=not no_log, memory=not no_memory, memory_items=memory_items, tags=tuple(tags))
    if agent.libraries:  # extras not set up or built: one line, before the model is asked anything
        check_libraries(sandbox, agent.libraries, docker_host)
    agent.model.check_ready()  # key and API before any sandbox starts or is set up
    agent.sandbox = choose_sandbox(sandbox, quiet=quiet or as_json, docker_host=docker_host, libraries=agent.libraries)
    progress.begin("reading the inputs, starting the sandbox")
    with agent.chat() as chat:
        try:
            result = chat.send(question, images=images, files=files)
        except KeyboardInterrupt:
            progress.close()
            partial = chat.results[-1] if chat.results else None
            if trace_path and partial is not None:
                _write_trace(partial, trace_path, quiet=True)
                fail(f"interrupted; the trace so far is in {trace_path}", 130)
            raise
        finally:
            progress.close()
    if trace_path:
        _write_trace(result, trace_path, quiet)
    image_paths = _save_step_images(result, out_dir, quiet or as_json) if out_dir else None
    if not (quiet or as_json):  # before the answer, so that the answer is the last thing shown
        say_run_log(result)
    if as_json:
        click.echo(json.dumps(result.as_dict(image_paths)))
    elif result.answer:
        echo_untrusted(result.answer)
    if result.error:
        echo_untrusted(f"agentic-vision: {result.error}", err=True)  # may quote the model server
    elif not result.answer:
        click.echo(f"agentic-vision: stopped without an answer ({result.stop_reason})", err=True)
    sys.exit(0 if result.answer else EXIT_FAILED)


def _save_step_images(result, out_dir: str, quiet: bool) -> list[list[str]]:
    """Writes each step's images to ``out_dir`` (never over an earlier file); their paths, per step."""
    paths = []
    try:
        for number, step in enumerate(result.steps, 1):
            paths.append([str(p) for p in write_images(step.images, Path(out_dir), stem=f"step-{number}-image")])
    except OSError as exc:
        raise file_error(exc) from None
    count = sum(map(len, paths))
    if count and not quiet:
        click.echo(f"{count} image{'s' if count > 1 else ''} written to {out_dir}", err=True)
    return paths


def _write_trace(result, trace_path: str, quiet: bool) -> None:
    try:
        write_trace(result, trace_path)
    except OSError as exc:
        raise file_error(exc) from None
    if not quiet:
        click.echo(f"trace written to {trace_path}", err=True)


# -- sandbox ----------------------------------------------------------------------------


@cli.group()
def sandbox() -> None:
    """Set up and inspect the sandboxes."""


@sandbox.command("setup")
@click.option("--python", "python", default=None, help="Interpreter to base the environment on (default: this one).")
@click.option("--quiet", is_flag=True, help="Say nothing when the environment is already up to date.")
@extras_options
@click.option("--force", is_flag=True, help="Make the environment of --with/--requirements again even if it is there.")
@click.option("-v", "--verbose", is_flag=True, help="Show pip's own log instead of the progress display.")
def sandbox_setup(python, quiet, with_, requirements, find_links, index_url, no_index, force, verbose) -> None:
    """Build the local sandbox's environment with Gemini's library list; with --with or
    --requirements, a separate environment with those extra libraries on top of it."""
    quiet = quiet_flag(quiet)
    libs, source = extras_from(with_, requirements, find_links, index_url, no_index)
    echo = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    if libs:
        build_layer(libs, source, force=force, echo=echo, python=python)
        echo(f"use it with: --libraries {' --libraries '.join(shlex.quote(r) for r in libs.requirements)}")
        return
    if quiet and env_is_current():
        return
    build_sandbox_env(python, verbose=verbose or current_verbosity().verbose > 0)


@sandbox.command("info")
@click.option("--json", "as_json", is_flag=True)
@click.option("--docker-host", default=None, metavar="URL",
              help="Docker engine to describe (default: DOCKER_HOST, the Docker context, the local socket).")
def sandbox_info(as_json, docker_host) -> None:
    """Show the local sandbox (interpreter, limits, libraries) and the Docker engine the Docker sandbox would use."""
    info: dict = {}
    try:
        with Spinner("starting the local sandbox and importing every library", enabled=not as_json):
            executor = get_executor("local", pool_size=0)
            with Session(executor, [], 300, guard=False) as session:
                libraries = session.libraries
        info.update({"interpreter": str(executor.python), "limits": executor.limits.as_dict(),
                     "enforcement": executor.enforcement, "libraries": libraries})
    except SandboxUnavailable as exc:  # the Docker half is still worth showing
        info["local_problem"] = str(exc)
    info["environments"] = environments_info()
    info["docker"] = docker_info(docker_host)
    usable = "local_problem" not in info or "problem" not in info["docker"]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        sys.exit(0 if usable else EXIT_SANDBOX)
    if "local_problem" in info:
        click.echo(f"local sandbox: unavailable: {info['local_problem']}")
    else:
        click.echo(f"interpreter: {info['interpreter']}")
        for what, how in info["enforcement"].items():
            click.echo(f"{what:>18}: {how}")
        click.echo(f"libraries: {library_summary(info['libraries'])}")
        for name, status in info["libraries"].items():
            click.echo(f"  {name:<28} {status.get('version') or 'missing: ' + status.get('error', '')}")
    if "local_problem" not in info:  # without the default environment, the extras layered on it are of no use
        click.echo("environments (local):")
        for env in info["environments"]:
            size = f"{env['size_bytes'] / 1e6:.0f} MB" if env["size_bytes"] >= 1e6 else f"{env['size_bytes'] / 1e3:.0f} kB"
            extra = "the hosted libraries (fidelity)" if env["name"] == "default" else \
                f"+ {describe_installed(env['installed'])} (--libraries {' '.join(env['requested'])})"
            stale = "" if env["current"] else ", not set up or out of date: run 'agentic-vision sandbox setup'" if env["name"] == "default" \
                else f", made on an older default environment: run {library_set(env['requested']).quoted('setup')} again"
            click.echo(f"  {env['name']:<18} {size:>8}  {extra}{stale}")
    docker = info["docker"]
    if "engine" in docker:
        click.echo(f"docker engine: {engine_line(docker['engine'])}")
        click.echo(f"docker image: {docker['image']} ({docker.get('problem') or 'built and current'})")
        for image in docker.get("extras", []):
            layer = f"+{image['layer_bytes'] / 1e6:.1f} MB" if image["layer_bytes"] is not None else \
                f"{image['size_bytes'] / 1e6:.0f} MB"
            click.echo(f"  {image['image']}  {layer}  + {describe_installed(image['installed'])} "
                       f"(--libraries {' '.join(image['requested'])})")
    else:
        click.echo(f"docker engine: unavailable: {docker['problem']}")
    sys.exit(0 if usable else EXIT_SANDBOX)


cli.add_command(bench_command)
cli.add_command(chat_command)
cli.add_command(logs_command)
cli.add_command(feedback_command)
cli.add_command(remember_command)
cli.add_command(memory_command)
cli.add_command(mcp_command)
cli.add_command(serve_command)
sandbox.add_command(build_command, "build")
sandbox.add_command(check_command, "check")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        fail("interrupted", 130)
    except click.UsageError as exc:
        exc = name_the_variable(exc)
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        if isinstance(exc, click.NoSuchOption) and exc.ctx and exc.ctx.command.name == "ask":
            hint = (f" (a question that starts with '-' goes after '--': {exc.ctx.command_path} IMAGE -- "
                    f"\"{exc.option_name} ...\"; options: '{exc.ctx.command_path} --help')")
        fail(f"{exc.format_message()}{hint}", EXIT_USAGE)
    except click.ClickException as exc:
        fail(exc.format_message(), EXIT_USAGE)
    except AgenticVisionError as exc:
        fail(str(exc), exit_status(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(EXIT_FAILED)
    except OSError as exc:  # a trace or output path that cannot be written, a full disk...
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", EXIT_USAGE if exc.filename else EXIT_FAILED)
    except MemoryError:
        fail("out of memory: try a smaller image (--max-pixels) or fewer at once", EXIT_FAILED)
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("AGENTIC_VISION_DEBUG") == "1":
            raise
        detail = " ".join(str(exc).split())[:300]
        fail(f"internal error: {type(exc).__name__}: {detail} (AGENTIC_VISION_DEBUG=1 shows the traceback; "
             "please report it)", EXIT_FAILED)
