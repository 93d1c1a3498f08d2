"""What an MCP server is started with: sandbox, limits, model, directories."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...sandboxing.executors import as_library_set, check_docker_host
from ...sandboxing.extras import LibrarySet

MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    sandbox: str = "auto"  # local, docker or auto, as for exec
    docker_host: str | None = None  # the Docker sandbox's engine (default: DOCKER_HOST, the context, the socket)
    allow_dirs: tuple[Path, ...] = field(default_factory=lambda: (Path.cwd(),))
    timeout: float = 30.0  # seconds per run; also the most a call may ask for
    max_sessions: int = 4  # sandboxes open at once, the loop's own included
    idle_timeout: float = 900.0  # seconds; closes sessions nobody used (HTTP has no disconnect)
    image_max_side: int = 1536  # images come back downscaled to this longest side
    max_result_image_bytes: int = 8 * MiB  # all images of one result together
    model: str = "gemini-3-flash-preview"
    max_steps: int = 12  # the most an ask may take; a call may ask for fewer
    trace_dir: Path | None = None
    guard: bool = True
    auth_token: str | None = None  # HTTP: the bearer token every request must carry
    allow_hardlinks: bool = False  # read files under allow_dirs that have more than one link
    libraries: LibrarySet = LibrarySet()  # extra requirements, set up / built beforehand (sandbox setup --with)

    def __post_init__(self) -> None:
        check_docker_host(self.sandbox, self.docker_host)
        object.__setattr__(self, "libraries", as_library_set(self.libraries))

    def limits(self, executor) -> dict:
        """The limits as a client may read them (the limits resource)."""
        return {
            "timeout_s": self.timeout,
            "sandbox": executor.kind,
            "docker_engine": executor.engine.address if executor.kind == "docker" else None,
            "sandbox_limits": executor.limits.as_dict(),
            "enforcement": executor.enforcement,
            "max_sessions": self.max_sessions,
            "idle_timeout_s": self.idle_timeout,
            "image_max_side": self.image_max_side,
            "max_result_image_bytes": self.max_result_image_bytes,
            "allowed_dirs": [str(d) for d in self.allow_dirs],
            "model": self.model,
            "max_steps": self.max_steps,
        }
