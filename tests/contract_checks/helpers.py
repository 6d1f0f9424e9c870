"""Small helpers shared by the contract checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas" / "v1"


def schema_errors(name: str, instance: Any) -> list[str]:
    """Every way ``instance`` breaks the published schema ``name`` (empty: it validates)."""
    schema = json.loads((SCHEMAS / name).read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def base_env(**extra: str) -> dict[str, str]:
    """The environment without any clipline variable of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def clipline(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line (``python -m clipline.cli``), as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "clipline.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def last_json(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    assert lines, "nothing on stdout"
    obj: dict[str, Any] = json.loads(lines[-1])
    return obj
