"""The shape of the tree: the sandbox side stands alone, imports go one way, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agentic_vision"
SANDBOX = ROOT / "sandbox"  # installed as agentic_vision.sandbox_runtime
MAX_LINES = 450
# Longer on purpose, each for a reason; everything else stays under MAX_LINES.
LONG_MODULES = {
    "sandbox/guard.py": "the RestrictedPython policy, kept whole so it can be reviewed in one place",
    "agentic_vision/models/openai_compat.py": "one wire API with its two tool protocols (native and text)",
    "agentic_vision/testing/gemini_server.py": "the scripted Gemini server: every reply shape the wire tests use",
    "agentic_vision/testing/openai_server.py": "the scripted OpenAI-compatible server, likewise",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Absolute names of what the module imports when it is imported (not inside functions).
    ``from pkg import submodule`` is an edge to the submodule only; any other name, to ``pkg``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    found.add(submodule if submodule in modules else module)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])
            elif isinstance(node, ast.ClassDef):  # a class body runs at import time too
                visit(node.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {
        name: {target for target in top_level_imports(path, name, set(modules)) if target in modules and target != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = walk(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = walk(node)
            if cycle:
                return cycle
    return None


def test_the_sandbox_side_imports_nothing_of_the_host_package():
    offenders = []
    for path in sorted(SANDBOX.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # Relative imports stay inside sandbox/; two dots would reach agentic_vision.
                names = [node.module or ""] if node.level == 0 else (["agentic_vision"] if node.level > 1 else [])
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                          if n == "agentic_vision" or n.startswith("agentic_vision.")]
    assert offenders == []


def test_the_graph_sees_relative_and_absolute_imports():
    graph = import_graph()
    assert "agentic_vision.sandboxing.worker" in graph["agentic_vision.sandboxing.session"]  # from .worker import
    assert "agentic_vision.errors" in graph["agentic_vision.sandboxing.session"]  # from ..errors import
    assert "agentic_vision.loop.agent" in graph["agentic_vision.loop"]  # a package's __init__


def test_package_imports_form_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_modules_are_small_or_allowed_to_be_long_for_a_reason():
    too_long = {}
    for path in sorted([*PACKAGE.rglob("*.py"), *SANDBOX.rglob("*.py")]):
        rel = str(path.relative_to(ROOT))
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and rel not in LONG_MODULES:
            too_long[rel] = lines
    assert too_long == {}, f"over {MAX_LINES} lines: {too_long}"
    gone = [rel for rel in LONG_MODULES if not (ROOT / rel).is_file()]
    assert gone == [], f"allowed long modules that no longer exist: {gone}"
