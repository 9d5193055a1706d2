"""The anatomy of docs/anatomy.md, checked: every service has the same modules, no module
passes 500 lines, no import cycle, no private name imported from another module, and the
domain stays pure (no SQL, HTTP, Kafka)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("intake", "assignment", "notification")
#: Every service holding data has these (a module or a package of modules).
COMMON = ("domain", "projections", "tables", "settings", "bootstrap", "__main__")
MAX_LINES = 500
#: Generated or catalogue files, allowed to be long.
LONG_ALLOWED = {"libs/shared_models/src/shared_models/events.py"}
#: What a domain module never imports.
IMPURE = ("sqlalchemy", "fastapi", "faststream", "aiokafka", "httpx", "starlette")


def _packages() -> dict[str, Path]:
    """Top-level package name -> its folder, for every src-layout package of the repo."""
    found = {}
    for pyproject in ROOT.glob("*/*/pyproject.toml"):
        for init in (pyproject.parent / "src").glob("*/__init__.py"):
            found[init.parent.name] = init.parent
    return found


def _modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, migrations aside (Alembic's own layout)."""
    out = {}
    for file in package.rglob("*.py"):
        if "migrations" in file.parts:
            continue
        parts = file.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = file
    return out


def _top_level_imports(file: Path, module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names) for the imports executed when the module loads (not those
    inside functions, nor under `if TYPE_CHECKING`)."""
    tree = ast.parse(file.read_text(encoding="utf-8"))
    is_package = file.name == "__init__.py"
    found: list[tuple[str, list[str]]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.append((base, [a.name for a in node.names]))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_common_modules(service: str) -> None:
    package = ROOT / "services" / service / "src" / service
    missing = [
        m for m in COMMON if not (package / f"{m}.py").exists() and not (package / m).is_dir()
    ]
    assert not missing, f"{service} lacks {missing} (docs/anatomy.md)"
    for layer in ("commands", "views", "api", "schemas"):
        if service == "notification" and layer in ("commands", "views", "api", "schemas"):
            continue  # no HTTP use case and no read query: it only reacts to events
        assert (package / f"{layer}.py").exists() or (package / layer).is_dir(), (
            f"{service} lacks {layer}"
        )


def test_no_source_module_passes_500_lines() -> None:
    long = []
    for folder in ("libs", "services", "tools", "adapters", "tests"):
        for file in (ROOT / folder).rglob("*.py"):
            if "migrations" in file.parts or ".venv" in file.parts or "node_modules" in file.parts:
                continue
            relative = file.relative_to(ROOT).as_posix()
            lines = len(file.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES and relative not in LONG_ALLOWED:
                long.append(f"{relative}: {lines}")
    assert not long, "split by use case: " + ", ".join(long)


def _import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the repo's modules it imports when loading; and the private names imported."""
    packages = _packages()
    graph: dict[str, set[str]] = {}
    private = []
    modules = {m: f for folder in packages.values() for m, f in _modules(folder).items()}
    for module, file in modules.items():
        edges = graph.setdefault(module, set())
        for target, names in _top_level_imports(file, module):
            if target.split(".")[0] not in packages:
                continue
            for imported in names:
                if imported.startswith("_") and not imported.startswith("__"):
                    private.append(f"{module} imports {target}.{imported}")
                if f"{target}.{imported}" in modules:
                    edges.add(f"{target}.{imported}")
            edges.add(target)
    return graph, private


def test_no_private_name_is_imported_from_another_module() -> None:
    _, private = _import_graph()
    assert not private, private


def test_no_import_cycle() -> None:
    graph, _ = _import_graph()

    # A cycle among module-level imports (a package's __init__ importing its own submodules
    # is how a package exposes them, not a cycle between responsibilities).
    def parent_init_edge(a: str, b: str) -> bool:
        return a.startswith(b + ".") or b.startswith(a + ".")

    visiting: set[str] = set()
    done: set[str] = set()
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        visiting.add(node)
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or nxt == node or parent_init_edge(node, nxt):
                continue
            if nxt in visiting:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                walk(nxt, path)
        path.pop()
        visiting.discard(node)
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            walk(node, [])
    assert not cycles, [" -> ".join(c) for c in cycles]


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_is_pure(service: str) -> None:
    package = ROOT / "services" / service / "src" / service
    files = [package / "domain.py", *(package / "domain").glob("*.py")]
    if service == "assignment":
        files.append(package / "legal_deadline.py")
    for file in (f for f in files if f.exists()):
        module = f"{service}.{file.stem}"
        for target, _ in _top_level_imports(file, module):
            assert target.split(".")[0] not in IMPURE, f"{file.name} imports {target}"
