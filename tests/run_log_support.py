"""Temp homes for the run-log tests: their own logs.db, the machine's sandbox environment."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from agentic_vision.paths import state_dir

SHARED = ("sandbox-env", "matplotlib", "libraries")  # built once per machine; the run log is not among them


def make_home(root: Path) -> Path:
    """A state folder with no run log yet, whose sandbox environment and caches are the machine's (links)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        (state_dir() / name).mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(state_dir() / name)
    return root


def cli_env(home: Path, server=None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "AGENTIC_VISION_LOGS")}
    env["AGENTIC_VISION_HOME"] = str(home)
    env["GEMINI_API_KEY"] = "test-key"
    if server is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = server.url
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(home: Path, *args, server=None, env=None, input=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "agentic_vision", *args], capture_output=True, text=True,
                          env={**cli_env(home, server), **(env or {})}, input=input, timeout=timeout)


def system_text(request) -> str:
    instruction = (request.body or {}).get("systemInstruction") or {}
    return "".join(part.get("text", "") for part in instruction.get("parts", []))


def user_texts(request) -> list[str]:
    return [part.get("text", "") for content in request.contents if content.get("role") == "user"
            for part in content.get("parts", []) if "text" in part]


def rows(home: Path, sql: str, args=()) -> list[tuple]:
    """Read the log as an outside reader would: a plain sqlite3 connection."""
    conn = sqlite3.connect(f"file:{home / 'logs.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
