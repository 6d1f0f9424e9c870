"""pipeline/ never imports dramatiq (checked on the source, and by ruff's banned-api rule)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_sources_never_import_dramatiq() -> None:
    offenders = []
    for path in (ROOT / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("dramatiq", "actors", "clipline")
            ]
    assert offenders == []


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
