"""The `agentic-vision` command line.

Every failure a user can fix ends in one line on stderr and a distinct exit
status, never a traceback: 1 the code (or the model) did not succeed, 2 bad
usage or input, 3 the sandbox is unavailable.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..errors import AgenticVisionError
from ..inputs import DEFAULT_MAX_PIXELS
from ..inputs.pdf import parse_pages
from ..inputs.urls import is_url
from ..loop.agent import Agent
from ..sandboxing.environment import build_env, env_is_current
from ..sandboxing.executors import get_executor
from ..sandboxing.runtime_files import library_summary
from ..sandboxing.session import Session, open_session
from ..trace import write_trace
from .bench import bench_command
from .docker import build_command, check_command, docker_host_option, docker_info, engine_line, sandbox_option
from .exits import EXIT_FAILED, EXIT_USAGE, exit_status, fail, file_error
from .mcp import mcp_command
from .progress import Progress
from .readiness import choose_sandbox
from .serve import serve_command
from .spinner import Spinner

THINKING_LEVELS = ("default", "off", "minimal", "low", "medium", "high")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentic-vision")
def cli() -> None:
    """Code execution with images, on your own machine."""


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
def exec_command(code, sandbox, inputs, max_pixels, timeout, out_dir, as_json, no_guard, docker_host) -> None:
    """Run CODE (or - for stdin) in a fresh sandbox session."""
    if code == "-":
        code = sys.stdin.read()
    for path in inputs:
        if not Path(path).is_file():
            fail(f"input file not found: {path}", EXIT_USAGE)
    kind = choose_sandbox(sandbox, quiet=as_json, docker_host=docker_host)
    with open_session(kind, inputs=inputs, timeout=timeout, guard=not no_guard, pool_size=0,
                      max_pixels=max_pixels or DEFAULT_MAX_PIXELS, docker_host=docker_host) as session:
        if not as_json:
            click.secho(f"sandbox: {kind}", err=True, dim=True)
        result = session.run(code)
    try:
        paths = write_images(result.images, Path(out_dir))
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
        click.echo(result.output, nl=False)
        for path, image in zip(paths, result.images):
            origin = f", from {image.source.describe()}" if image.source else ""
            click.echo(f"[image {image.width}x{image.height} written to {path}{origin}]", err=True)
        if not result.ok:
            click.echo(f"agentic-vision: {result.outcome}", err=True)
    sys.exit(0 if result.ok else EXIT_FAILED)


# -- ask ----------------------------------------------------------------------------------


@cli.command("ask")
@click.argument("args", nargs=-1, required=True, metavar="IMAGE... QUESTION")
@click.option("--image", "more_images", multiple=True, help="Another image, folder, PDF or URL (repeatable).")
@click.option("--file", "files", multiple=True, help="A data file for the code, e.g. CSV, or its URL (repeatable).")
@click.option("--model", default="gemini-3-flash-preview", show_default=True, envvar="AGENTIC_VISION_MODEL",
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the answer.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def ask_command(args, more_images, files, model, base_url, sandbox, docker_host, max_steps, timeout, thinking,
                max_pixels, pages, no_guard, trace_path, as_json, quiet) -> None:
    """Ask QUESTION about IMAGE (files, folders, PDFs or URLs; several allowed); the model
    may run code on them before it answers.  QUESTION - reads it from stdin."""
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
    options = {}
    if thinking.lower() != "default":
        options["thinking"] = thinking.lower()
    if base_url:
        options["base_url"] = base_url
    progress = Progress(not quiet and not as_json)
    agent = Agent(model=model, sandbox=sandbox, model_options=options, max_steps=max_steps, timeout=timeout,
                  sandbox_options={"docker_host": docker_host} if docker_host else None,
                  on_event=progress, guard=not no_guard, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, pages=pages)
    agent.model.check_ready()  # key and API before any sandbox starts or is set up
    agent.sandbox = choose_sandbox(sandbox, quiet=quiet or as_json, docker_host=docker_host)
    with agent.chat() as chat:
        try:
            result = chat.send(question, images=images, files=files)
        except KeyboardInterrupt:
            partial = chat.results[-1] if chat.results else None
            if trace_path and partial is not None:
                _write_trace(partial, trace_path, quiet=True)
                fail(f"interrupted; the trace so far is in {trace_path}", 130)
            raise
    if trace_path:
        _write_trace(result, trace_path, quiet)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    elif result.answer:
        click.echo(result.answer)
    if result.error:
        click.echo(f"agentic-vision: {result.error}", err=True)
    elif not result.answer:
        click.echo(f"agentic-vision: stopped without an answer ({result.stop_reason})", err=True)
    sys.exit(0 if result.answer else EXIT_FAILED)


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
def sandbox_setup(python, quiet) -> None:
    """Build the local sandbox's environment with Gemini's library list."""
    if quiet and env_is_current():
        return
    build_env(python, echo=lambda line: click.echo(line, err=True))


@sandbox.command("info")
@click.option("--json", "as_json", is_flag=True)
@click.option("--docker-host", default=None, metavar="URL",
              help="Docker engine to describe (default: DOCKER_HOST, the Docker context, the local socket).")
def sandbox_info(as_json, docker_host) -> None:
    """Show the local sandbox (interpreter, limits, libraries) and the Docker engine the Docker sandbox would use."""
    with Spinner("starting the local sandbox and importing every library", enabled=not as_json):
        executor = get_executor("local", pool_size=0)
        with Session(executor, [], 300, guard=False) as session:
            libraries = session.libraries
    info = {
        "interpreter": str(executor.python),
        "limits": executor.limits.as_dict(),
        "enforcement": executor.enforcement,
        "libraries": libraries,
        "docker": docker_info(docker_host),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"interpreter: {info['interpreter']}")
    for what, how in info["enforcement"].items():
        click.echo(f"{what:>18}: {how}")
    click.echo(f"libraries: {library_summary(libraries)}")
    for name, status in libraries.items():
        click.echo(f"  {name:<28} {status.get('version') or 'missing: ' + status.get('error', '')}")
    docker = info["docker"]
    if "engine" in docker:
        click.echo(f"docker engine: {engine_line(docker['engine'])}")
        click.echo(f"docker image: {docker['image']} ({docker.get('problem') or 'built and current'})")
    else:
        click.echo(f"docker engine: unavailable: {docker['problem']}")


cli.add_command(bench_command)
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
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
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
