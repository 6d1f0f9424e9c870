"""The published contracts, ``docs/schemas/v{N}/``: JSON Schemas generated from the models, and the job
states. ``tests/pipeline/test_schemas.py`` fails when the models and the published files differ.

    python -m pipeline.schemas            # write them (after changing a model)
    python -m pipeline.schemas --check    # exit 1 naming each file that differs

A change that only adds an optional field keeps the version; one that removes,
renames or retypes a field, or makes one required, is a new ``SCHEMA_VERSION``
and a new directory (the old one stays published).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .models import FINAL_STATUSES, SCHEMA_VERSION, JobStatus, RenderRequest
from .records import JobDetail
from .report import Report
from .webhooks import CallbackPayload

ROOT = Path(__file__).resolve().parents[1] / "docs" / "schemas" / f"v{SCHEMA_VERSION}"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: file -> (model, mode): the request as it is sent (validation), the others as clipline writes them.
MODELS: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "request.schema.json": (RenderRequest, "validation"),
    "job.schema.json": (JobDetail, "serialization"),
    "report.schema.json": (Report, "serialization"),
    "callback.schema.json": (CallbackPayload, "serialization"),
}

STATES = {
    JobStatus.PENDING: "recorded, waiting for the plan stage",
    JobStatus.PLANNING: "validating, resolving each video once, sending one clip message per line",
    JobStatus.EXTRACTING: "clips being cut (their outcomes counted live)",
    JobStatus.ASSEMBLING: "concatenating the clips, muxing the song, writing final.mp4 and report.json",
    JobStatus.COMPLETED: "final: the video is whole, every line has its planned footage",
    JobStatus.COMPLETED_WITH_GAPS: "final: the video is whole; some lines hold local or placeholder footage",
    JobStatus.FAILED: "final: no video (error says why; a refused request names every field)",
    JobStatus.CANCELLED: "final: cancelled on request; nothing more runs for it",
}
NEXT = {
    JobStatus.PENDING: [JobStatus.PLANNING],
    JobStatus.PLANNING: [JobStatus.EXTRACTING],
    JobStatus.EXTRACTING: [JobStatus.ASSEMBLING],
    JobStatus.ASSEMBLING: [JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_GAPS, JobStatus.FAILED],
}
#: A retry starts the job's next attempt at PENDING from these.
RETRYABLE = [JobStatus.COMPLETED_WITH_GAPS, JobStatus.FAILED, JobStatus.CANCELLED]


Mode = Literal["validation", "serialization"]


def _schema(name: str, model: type[BaseModel], mode: Mode) -> dict[str, Any]:
    schema_id = f"urn:clipline:schema:v{SCHEMA_VERSION}:{name.split('.')[0]}"
    return {"$schema": DIALECT, "$id": schema_id, **model.model_json_schema(mode=mode)}


def job_states() -> dict[str, Any]:
    """The job state machine: every state, which are final, the forward moves, and the two from anywhere."""
    return {
        "schema_version": SCHEMA_VERSION,
        "states": [
            {"name": s.value, "final": s in FINAL_STATUSES, "description": STATES[s]} for s in JobStatus
        ],
        "next": {s.value: [n.value for n in after] for s, after in NEXT.items()},
        "from_any_non_final": {
            JobStatus.FAILED.value: "an error no retry can fix (the error names it)",
            JobStatus.CANCELLED.value: "POST /jobs/{id}/cancel or clipline cancel",
        },
        "retry": {
            "from": [s.value for s in RETRYABLE],
            "to": JobStatus.PENDING.value,
            "note": "the job's next attempt (attempt + 1); COMPLETED_WITH_GAPS renders only the lines "
            "without their footage, FAILED and CANCELLED every line",
        },
        "progress": "0-100, never goes backwards within an attempt; 100 when COMPLETED(_WITH_GAPS)",
    }


def documents() -> dict[str, dict[str, Any]]:
    """Every published file's content, by file name."""
    out = {name: _schema(name, model, mode) for name, (model, mode) in MODELS.items()}
    out["job-states.json"] = job_states()
    return out


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def differing(root: Path = ROOT) -> list[str]:
    """The published files that are missing or differ from what the models give."""
    return [name for name, doc in documents().items() if _read(root / name) != render(doc)]


def write(root: Path = ROOT) -> list[str]:
    """Write every file that differs; returns their names."""
    changed = differing(root)
    root.mkdir(parents=True, exist_ok=True)
    docs = documents()
    for name in changed:
        tmp = root / f".{name}.tmp"
        tmp.write_text(render(docs[name]))
        tmp.replace(root / name)
    return changed


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.schemas", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a published file differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = differing()
        for name in stale:
            print(f"{ROOT / name} differs from the models: run python -m pipeline.schemas", file=sys.stderr)
        return 1 if stale else 0
    for name in write():
        print(f"wrote {ROOT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
