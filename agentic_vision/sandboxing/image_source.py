"""What the Docker sandbox image is built from, and the hash that names that source.

The one definition, shared by ``scripts/build-sandbox-image.sh`` (which runs
this file with any python3, before any environment exists, to stage the
build context and label the image) and by the Docker executor (which refuses
an image whose label no longer matches the checkout).  Standard library only,
so it runs as a plain script:

    python3 agentic_vision/sandboxing/image_source.py [--files] [ROOT]

The hash is sha256 of the text ``sha256sum`` prints for Dockerfile.sandbox
and every file under sandbox/ (recursively, skipping __pycache__/, *.pyc and
dot-files), with paths relative to the repository root, sorted bytewise.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path


def tree_files(folder: Path, prefix: str) -> list[str]:
    """The files under ``folder`` as ``prefix/relative/path``, skipping __pycache__/, *.pyc and dot-files."""
    paths = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if not name.endswith(".pyc") and not name.startswith("."):
                paths.append(f"{prefix}/{os.path.relpath(os.path.join(dirpath, name), folder)}")
    return paths


def source_files(root: Path) -> list[str] | None:
    """Dockerfile.sandbox and sandbox/'s files, relative to ``root``; None outside a checkout."""
    root = Path(root)
    if not (root / "Dockerfile.sandbox").is_file() or not (root / "sandbox").is_dir():
        return None
    return sorted(["Dockerfile.sandbox", *tree_files(root / "sandbox", "sandbox")], key=lambda p: p.encode())


def hash_of(files: dict[str, Path]) -> str:
    """The label's hash of a build context given as {name in the context: file}.

    An installed package holds the same files in other places (see
    ``runtime_files.image_sources``); hashing by the names in the context gives
    both the same hash.
    """
    names = sorted(files, key=lambda p: p.encode())  # `LC_ALL=C sort`
    lines = "".join(f"{hashlib.sha256(Path(files[n]).read_bytes()).hexdigest()}  {n}\n" for n in names)
    return hashlib.sha256(lines.encode()).hexdigest()


def source_hash(root: Path) -> str | None:
    """The hash the build puts in the image's label; None outside a checkout."""
    paths = source_files(root)
    if paths is None:
        return None
    return hash_of({p: Path(root) / p for p in paths})


def main(argv: list[str]) -> int:
    files = "--files" in argv
    rest = [a for a in argv if a != "--files"]
    root = Path(rest[0]) if rest else Path(__file__).resolve().parents[2]
    paths = source_files(root)
    if paths is None:
        print(f"{root} holds no Dockerfile.sandbox and sandbox/", file=sys.stderr)
        return 1
    print("\n".join(paths) if files else source_hash(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
