"""`agentic-vision serve`: the Gemini-API gateway on uvicorn."""

from __future__ import annotations

import click

from ..errors import InputError
from .docker import docker_host_option, sandbox_option
from .readiness import say_why_not_docker
from .libraries import libraries_option
from .verbosity import quiet as quiet_flag


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --auth-key.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@sandbox_option("Where the code of each request runs.")
@docker_host_option
@click.option("--route", "routes", multiple=True, metavar="NAME=MODEL[@BASE_URL]",
              help="Run requests for model NAME on another backend, e.g. "
                   "gemini-3-flash-preview=ollama:qwen2.5vl (repeatable).")
@click.option("--auth-key", envvar="AGENTIC_VISION_AUTH_KEY", show_envvar=True, default=None,
              help="The key clients must send (x-goog-api-key or ?key=); it or --client-keys is required "
                   "off loopback. Its holders share their uploaded files.")
@click.option("--client-keys", type=click.Path(dir_okay=False), envvar="AGENTIC_VISION_CLIENT_KEYS", show_envvar=True, default=None,
              help="A file of more keys the gateway takes, one per line (KEY or KEY NAME; # comments), "
                   "each its own client: files uploaded with one key are invisible to the others.")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=4, show_default=True,
              envvar="AGENTIC_VISION_MAX_CONCURRENT", show_envvar=True, help="Code-execution requests run at once; more wait in the queue.")
@click.option("--max-queue", type=click.IntRange(min=0), default=32, show_default=True,
              envvar="AGENTIC_VISION_MAX_QUEUE", show_envvar=True, help="Code-execution requests waiting for a slot; more get 429.")
@click.option("--queue-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              envvar="AGENTIC_VISION_QUEUE_TIMEOUT", show_envvar=True,
              help="Seconds a request waits in the queue before it gets 429 (with Retry-After).")
@click.option("--max-memory-mb", type=click.FloatRange(min=1), default=256.0, show_default=True,
              envvar="AGENTIC_VISION_MAX_MEMORY_MB", show_envvar=True,
              help="Memory for request bodies being received and parsed; past it requests wait briefly, "
                   "then get 503 (with Retry-After).")
@click.option("--max-body-mb", type=click.FloatRange(min=0.1), default=20.0, show_default=True,
              help="Largest request body; larger ones get 413 (upload big files with the Files API).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds per code run.")
@click.option("--max-steps", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default=None, help="The server's log level [default: info; the global -q: error].")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="A line per request (model, steps, sandbox time, status, duration) as text or one JSON object.")
@libraries_option
def serve_command(host, port, sandbox, docker_host, routes, auth_key, client_keys, max_concurrent, max_queue,
                  queue_timeout, max_memory_mb, max_body_mb, timeout, max_steps, log_level, log_format,
                  libraries) -> None:
    """Serve the Gemini API: codeExecution requests run the local loop, others go upstream.

    Point existing code at it with GOOGLE_GEMINI_BASE_URL=http://HOST:PORT (Python)
    or httpOptions.baseUrl (JavaScript). Gemini is reached with GEMINI_API_KEY and
    GOOGLE_GEMINI_BASE_URL of this process, or the client's own key when there is none.
    """
    try:
        from ..servers.gateway import GatewayConfig, serve
        from ..servers.gateway.serve import check_bind, listen_socket
    except ImportError as exc:
        raise InputError(f"the gateway needs the serve extra ({exc.name} is missing): "
                         "pip install 'agentic-vision[serve]' (in a checkout: EXTRAS=serve ./av serve)") from None
    from ..sandboxing.executors import check_docker_host, check_libraries, describe_sandbox, sandbox_in_use

    check_docker_host(sandbox, docker_host, cli=True)
    config = GatewayConfig(sandbox=sandbox, docker_host=docker_host, routes=list(routes), auth_key=auth_key,
                           client_keys=client_keys, max_concurrent=max_concurrent, max_queue=max_queue,
                           queue_timeout=queue_timeout, max_memory_bytes=int(max_memory_mb * 2**20),
                           max_body_bytes=int(max_body_mb * 2**20), timeout=timeout, max_steps=max_steps,
                           libraries=libraries)
    if config.libraries:  # not set up or built: one line now, not an error per request
        check_libraries(sandbox, config.libraries, docker_host)
    check_bind(host, config)
    # An engine that does not answer is one line now, before serving, not a 500 per request.
    kind, engine = sandbox_in_use(sandbox, docker_host, config.libraries)
    say_why_not_docker(sandbox, kind, docker_host)
    if not config.upstream_key and config.authenticates:
        click.echo("agentic-vision: no GEMINI_API_KEY: Gemini models will not be served "
                   "(with --auth-key or --client-keys, clients' keys are not forwarded)", err=True)
    keys = "its own key" if config.upstream_key else "each client's key" if not config.authenticates else "no key"
    sock = listen_socket(host, port)
    port = sock.getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    extras = f", with {config.libraries}" if config.libraries else ""
    click.echo(f"agentic-vision gateway on http://{where}:{port} (sandbox {describe_sandbox(sandbox, kind, engine)}"
               f"{extras}; Gemini at {config.upstream_url} with {keys})", err=True)
    for route in config.routes.values():
        click.echo(f"  route {route.name} -> {route.model}" + (f" at {route.base_url}" if route.base_url else ""),
                   err=True)
    log_level = log_level or ("error" if quiet_flag() else "info")
    serve(config, host=host, port=port, log_level=log_level, sock=sock, log_format=log_format)
