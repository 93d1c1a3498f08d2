"""What a pip run installed, with each distribution's import names.

Standard library only: the host runs it on a local layered environment, and
a Docker extras build runs this very file inside the image (``python
extras_manifest.py REPORT.json > extras.json``).  Nothing is imported from
the packages: their metadata (top_level.txt, else RECORD) names the modules.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata


def import_names(dist: metadata.Distribution) -> list[str]:
    """Public top-level modules of an installed distribution."""
    top = dist.read_text("top_level.txt")
    if top:
        names = {line.strip() for line in top.splitlines() if line.strip()}
    else:
        names = set()
        for f in dist.files or ():
            parts = f.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in ("..", "__pycache__", "bin"):
                continue
            first = parts[0]
            if len(parts) > 1 and parts[-1] == "__init__.py":
                names.add(first)
            elif len(parts) == 1 and first.endswith((".py", ".so")):
                names.add(first.split(".")[0])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))


def manifest(report: dict, find=metadata.distribution) -> list[dict]:
    """[{distribution, version, requested, imports}] for each item pip's --report says it installed."""
    out = []
    for item in report.get("install", []):
        meta = item.get("metadata", {})
        name, version = meta.get("name", "?"), meta.get("version", "?")
        try:
            imports = import_names(find(name))
        except metadata.PackageNotFoundError:
            imports = []
        out.append({"distribution": name, "version": version, "requested": bool(item.get("requested")),
                    "imports": imports})
    return sorted(out, key=lambda d: (not d["requested"], d["distribution"].lower()))


def for_site(report: dict, site: str) -> list[dict]:
    """The same for a site-packages folder that is not this interpreter's (the host reading a layer)."""
    def find(name):
        for dist in metadata.distributions(path=[site]):
            if (dist.metadata["Name"] or "").lower().replace("_", "-") == name.lower().replace("_", "-"):
                return dist
        raise metadata.PackageNotFoundError(name)
    return manifest(report, find)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        rep = json.load(f)
    requested = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    json.dump({"requested": requested, "installed": manifest(rep)}, sys.stdout, indent=1)
