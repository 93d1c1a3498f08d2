"""Extra libraries beyond the hosted list: what a user asks for, and pip's answer.

A set of extra requirements (``--with PKG[==VER]``, ``--requirements FILE``,
``libraries=[...]``) is normalised and named by its content, so the same set
always finds the same local environment (``extras_env``) or Docker image
(``extras_image``), and never changes the default "fidelity" environment.
Packages are installed on the host with pip (or in a Docker build), never from
inside a sandbox: it has no network.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import InputError

PREFIX = "libs-"
MAX_LISTED = 60  # extras probed and listed to the model (the sandbox's libraries reply holds 100 names)  # environment and image-tag names: libs-<12 hex digits>


@dataclass(frozen=True)
class LibrarySet:
    """Normalised requirement strings, sorted; empty means the default environment."""

    requirements: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return hashlib.sha256("\n".join(self.requirements).encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return PREFIX + self.key

    @property
    def names(self) -> list[str]:
        """The distribution names asked for."""
        return [Requirement(r).name for r in self.requirements]

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        return " ".join(self.requirements)

    def command(self, verb: str) -> str:
        """The exact command that makes this set: 'agentic-vision sandbox setup --with a --with b'."""
        return shlex.join(["agentic-vision", "sandbox", verb, *[x for r in self.requirements for x in ("--with", r)]])

    def quoted(self, verb: str) -> str:
        """The command in quotes for a message: 'plain' or "with 'quoted>=1' requirements"."""
        command = self.command(verb)
        return f'"{command}"' if "'" in command else f"'{command}'"


def normalise(spec: str, where: str = "") -> str:
    """'Pillow_SIMD >= 9' -> 'pillow-simd>=9'; a one-line InputError for anything that is not a requirement."""
    text = spec.strip()
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        hint = ""
        if "/" in text or text.endswith((".whl", ".tar.gz", ".zip")):
            hint = ": give the package name (NAME or NAME==VERSION) and the folder of its wheels with --find-links DIR"
        raise InputError(f"{where}{text!r} is not a package requirement ({str(exc).splitlines()[0]}){hint}") from None
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    specifier = ",".join(sorted(str(s) for s in req.specifier))
    url = f" @ {req.url}" if req.url else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{canonicalize_name(req.name)}{extras}{specifier}{url}{marker}"


def read_requirements_file(path: str | Path) -> list[str]:
    """Requirement lines of a requirements file (comments and blank lines skipped).

    pip options inside the file are refused, not ignored: the command's own
    options say where packages come from."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the requirements file {path}: {exc.strerror or exc}") from None
    lines = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            raise InputError(f"{path}:{n}: pip options ({line.split()[0]}) are not read from the file: give them as "
                             "command options (--find-links DIR, --index-url URL, --no-index) or list the requirements")
        lines.append(line)
    return lines


def library_set(specs=(), requirements_file: str | Path | None = None) -> LibrarySet:
    """The normalised set of ``specs`` plus the file's lines; duplicates merged."""
    if isinstance(specs, str):
        specs = [specs]
    found = [normalise(s) for s in specs]
    if requirements_file is not None:
        found += [normalise(s, f"{requirements_file}: ") for s in read_requirements_file(requirements_file)]
    names: dict[str, str] = {}
    for r in found:
        name = canonicalize_name(Requirement(r).name)
        if name in names and names[name] != r:
            raise InputError(f"{name} is asked for twice ({names[name]!r} and {r!r}): keep one")
        names[name] = r
    return LibrarySet(tuple(sorted(set(found))))


@dataclass(frozen=True)
class PackageSource:
    """Where pip finds packages: PyPI by default, or wheels in local folders, or another index."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    no_index: bool = False

    def check(self) -> None:
        for d in self.find_links:
            if "://" not in d and not Path(d).is_dir():
                raise InputError(f"--find-links {d}: no such folder")
        if self.no_index and not self.find_links:
            raise InputError("--no-index leaves pip nothing to install from: give --find-links DIR as well")

    def pip_args(self, find_links: list[str] | None = None) -> list[str]:
        args = ["--no-index"] if self.no_index else []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for d in (self.find_links if find_links is None else find_links):
            args += ["--find-links", d]
        return args


# -- pip's failures, as one line ------------------------------------------------------------------

NETWORK_SIGNS = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
                 "Name or service not known", "Network is unreachable", "ConnectTimeoutError", "ProxyError",
                 "Max retries exceeded", "Could not fetch URL", "No route to host")


def pip_failure(output: str, libs: LibrarySet, what: str = "nothing was installed", no_index: bool = False) -> str:
    """One line for a failed pip run: which package, what went wrong, what to do."""
    errors = [line.removeprefix("ERROR:").strip() for line in output.splitlines() if line.startswith("ERROR:")]
    missing = next((m.group(1) for e in errors if (m := re.search(r"No matching distribution found for (\S+)", e))), None)
    if missing and any(sign in output for sign in NETWORK_SIGNS):
        return (f"cannot install {missing}: the package index cannot be reached (no network?); {what}. "
                f"Connect to the network, or download its wheels elsewhere (pip download {missing} -d DIR) "
                "and give --find-links DIR --no-index")
    if missing and no_index:
        return (f"cannot install {missing}: it is not in the --find-links folders (and --no-index uses no index); "
                f"{what}. Check the name and version, or put its wheel there")
    if missing:
        return (f"cannot install {missing}: no such package or version on the index; {what}. Check the name and "
                "version, or give --find-links DIR (a folder of wheels) or --index-url URL where it is")
    if any("ResolutionImpossible" in e or "conflicting dependencies" in e for e in errors) or "conflict is caused by" in output:
        causes = [line.strip().replace("The user requested (constraint) ", "the sandbox has ")
                  .replace("The user requested ", "asked for ")
                  for line in output.splitlines() if "depends on" in line or "The user requested" in line]
        cause = "; ".join(dict.fromkeys(causes))[:300] or "see pip's output above"
        return (f"cannot install {libs}: it conflicts with the sandbox's libraries, which stay at the hosted versions "
                f"({cause}); {what}. Choose a version that works with them")
    built = next((m.group(1) for e in errors if (m := re.search(r"Failed building wheel for (\S+)", e))), None)
    if built or any("subprocess-exited-with-error" in e for e in errors):
        return (f"cannot install {built or libs}: building it from source failed; {what}. Use a version with a "
                "wheel for CPython 3.11 on Linux, or build the wheel yourself and give --find-links DIR")
    last = errors[-1] if errors else (output.strip().splitlines() or ["pip failed"])[-1].strip()
    return f"cannot install {libs}: pip failed: {last[:300]}; {what}"


@dataclass
class Manifest:
    """What a set of extras installed: read back for the prompt and `sandbox info`."""

    requested: list[str]
    installed: list[dict] = field(default_factory=list)  # {"distribution", "version", "imports", "requested"}

    def specs(self) -> list[dict]:
        """Library specs for the sandbox's libraries op (as ``runtime_files.library_specs``)."""
        return [{"name": d["distribution"], "import": d["imports"][0], "distribution": d["distribution"],
                 "hosted": False, "extra": True, "version": d["version"], "imports": d["imports"]}
                for d in self.installed if d.get("requested") and d.get("imports")][:MAX_LISTED]

    def summary(self) -> str:
        return ", ".join(f"{d['distribution']} {d['version']}" for d in self.installed)

    def as_dict(self) -> dict:
        return {"requested": self.requested, "installed": self.installed}

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        return cls(list(data.get("requested", [])), list(data.get("installed", [])))
