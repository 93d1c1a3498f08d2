"""What a benchmark run is, as plain data: enough to rebuild its model and runner anywhere.

The thread-pool run builds its runner from this in the driver; a Ray run
ships it to each worker (it pickles: no clients, no locks, no sandboxes),
and the worker builds its own model client and warm sandbox pool from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..models import get_model
from ..sandboxing.executors import check_docker_host

# Settings the model backends read from the environment; a Ray run carries the
# driver's values to the workers, whose own environment is the cluster's.
MODEL_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI",
             "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST")


def make_model(name: str, base_url: str | None, thinking: str):
    options = {"thinking": thinking}
    if base_url:
        options["base_url"] = base_url
    return get_model(name, **options)


def model_env() -> tuple[tuple[str, str], ...]:
    """The driver's model settings, as (name, value) pairs (hashable, like the rest of RunConfig)."""
    return tuple((name, os.environ[name]) for name in MODEL_ENV if os.environ.get(name))


@dataclass(frozen=True)
class RayOptions:
    address: str = "auto"  # "auto" (RAY_ADDRESS, else the cluster started on this machine), host:port, ray://...
    cpus_per_episode: float = 1.0
    resource: str | None = None  # a custom node resource each episode needs one unit of
    retries: int = 2  # Ray's retries of an episode whose worker process or node died


@dataclass(frozen=True)
class RunConfig:
    model: str
    base_url: str | None = None
    thinking: str = "default"
    sandbox: str = "auto"
    max_steps: int = 12
    timeout: float = 30.0
    suite: str = ""
    traces: bool = True
    env: tuple[tuple[str, str], ...] = ()
    docker_host: str | None = None  # the Docker sandbox's engine, as the workers reach it
    memory: bool = False  # give the local modes the user's remembered corrections (bench --memory)
    libraries: tuple[str, ...] = ()  # extra requirements, set up / built on every node beforehand

    def __post_init__(self) -> None:
        check_docker_host(self.sandbox, self.docker_host)  # in the driver, before anything is shipped

    def build_runner(self):
        # The modes import google-genai (~1.5 s): not for every start of the command line.
        from .modes import ModeRunner

        return ModeRunner(make_model(self.model, self.base_url, self.thinking), sandbox=self.sandbox,
                          docker_host=self.docker_host, max_steps=self.max_steps, timeout=self.timeout,
                          memory=self.memory, libraries=self.libraries)
