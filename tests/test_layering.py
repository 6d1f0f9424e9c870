"""pipeline/ never imports dramatiq (checked on the source, and by ruff's banned-api rule)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: The project's packages. The domain is at the bottom: pipeline <- actors <- clipline (the entry points);
#: clipline.dev (demo, loopback CDN, sample media) is used by the ``clipline demo`` command and by tests.
PACKAGES = ("pipeline", "actors", "clipline", "clipline.dev")
#: What each package may not import at all.
FORBIDDEN = {"pipeline": ("actors", "clipline"), "actors": ("clipline",)}
BROKER_LIBS = ("dramatiq", "pika")


def _imports(path: Path) -> list[str]:
    """Every module an import statement in ``path`` names (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            out += [f"{module}.{a.name}" if not node.module else module for a in node.names]
    return out


def _package_of(module: str) -> str | None:
    """The layer a module belongs to (its longest matching package), or None for third-party modules."""
    matches = [p for p in PACKAGES if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def _source_files(package: str) -> list[Path]:
    root = ROOT.joinpath(*package.split("."))
    return [
        p
        for p in root.rglob("*.py")
        if _package_of(".".join(p.relative_to(ROOT).with_suffix("").parts)) == package
    ]


def test_only_actors_imports_the_broker_libraries() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in PACKAGES
        if package != "actors"
        for path in _source_files(package)
        for name in _imports(path)
        if name.split(".")[0] in BROKER_LIBS
    ]
    assert offenders == []


def _package_graph() -> dict[str, set[str]]:
    """package -> the other project packages its modules import."""
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for package in PACKAGES:
        for path in _source_files(package):
            graph[package] |= {u for u in map(_package_of, _imports(path)) if u not in (None, package)}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the graph as a path (first node repeated at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    return next((c for c in (visit(n, []) for n in sorted(graph)) if c), None)


def test_no_import_cycle_between_packages() -> None:
    assert _cycle(_package_graph()) is None


def test_the_domain_and_the_broker_glue_import_no_entry_point() -> None:
    graph = _package_graph()
    offenders = {p: sorted(u for u in graph[p] if u.split(".")[0] in FORBIDDEN[p]) for p in FORBIDDEN}
    assert offenders == {"pipeline": [], "actors": []}


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_layer_walk_sees_every_import_form() -> None:
    """The walk itself: absolute, relative and from-package imports all resolve to their package."""
    tree = ROOT / "clipline" / "dev" / "demo.py"
    names = _imports(tree)
    assert "clipline.dev.cdn" in names  # from .cdn import LoopbackCDN
    assert "pipeline.context" in names  # from pipeline.context import Context (inside a function)
    assert _package_of("clipline.dev.cdn") == "clipline.dev"
    assert _package_of("clipline.cli") == "clipline"
    assert _package_of("dramatiq.common") is None


def test_importing_pipeline_loads_no_broker() -> None:
    code = (
        "import sys, pipeline.assembly, pipeline.clipstage, pipeline.planning, pipeline.jobs; "
        "print('dramatiq' in sys.modules, 'prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_public_api_is_pinned() -> None:
    import pipeline

    assert sorted(pipeline.__all__) == [
        "ClipLineError",
        "ClipOutcome",
        "ClipRecord",
        "JobConflict",
        "JobNotFound",
        "JobStatus",
        "RenderRequest",
        "RequestInvalid",
        "Settings",
        "Slot",
        "build_slots",
        "get_settings",
        "parse_request",
        "total_frames",
    ]
