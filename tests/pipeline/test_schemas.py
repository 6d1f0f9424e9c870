"""Published schemas (docs/schemas/v1/) are what the models say, and real outputs validate against them."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipeline import schemas
from pipeline.clip_stats import ClipCounts, ClipStats
from pipeline.context import JobView
from pipeline.models import ClipRecord, JobStatus, parse_request
from pipeline.records import JobDetail
from pipeline.report import build_report
from pipeline.timeline import build_slots
from pipeline.webhooks import CallbackPayload

DESIGN_EXAMPLE: dict[str, Any] = {
    "job_id": "mix-20261122-0001",
    "mix_request_id": "req-778",
    "trace_id": "4bf92f3577b34da6",
    "output": {"width": 1280, "height": 720, "fps": 30},
    "audio": {"url": "http://cdn.example/songs/778.m4a"},
    "callback_url": "http://scheduler.internal/render-callbacks",
    "lines": [
        {
            "text": "第一句歌词",
            "start_ms": 0,
            "end_ms": 3200,
            "clip": {"video_id": "v_91f", "start_ms": 61300, "end_ms": 64500},
        },
        {
            "text": "第二句歌词",
            "start_ms": 3200,
            "end_ms": 7050,
            "clip": {
                "video_id": "v_17a",
                "start_ms": 1000,
                "end_ms": 4850,
                "hls_url": "http://cdn.example/v_17a/index.m3u8",
            },
        },
    ],
}


def published(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((schemas.ROOT / name).read_text())
    return doc


def check(name: str, instance: Any) -> None:
    schema = published(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)


def test_the_published_schemas_are_what_the_models_say() -> None:
    stale = schemas.differing()
    assert stale == [], f"{stale} differ from the models: run `python -m pipeline.schemas`, commit the result"
    assert schemas.main(["--check"]) == 0


def test_a_changed_model_or_a_hand_edit_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "v1"
    shutil.copytree(schemas.ROOT, root)
    assert schemas.differing(root) == []
    edited = json.loads((root / "report.schema.json").read_text())
    edited["properties"].pop("schema_version")
    (root / "report.schema.json").write_text(json.dumps(edited))
    (root / "job-states.json").unlink()
    assert schemas.differing(root) == ["report.schema.json", "job-states.json"]
    assert schemas.write(root) == ["report.schema.json", "job-states.json"]
    assert schemas.differing(root) == []


def test_every_published_file_is_a_valid_schema_with_a_version() -> None:
    for name in schemas.MODELS:
        doc = published(name)
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == schemas.DIALECT and doc["$id"].startswith("urn:clipline:schema:v1:")
        assert "schema_version" in doc["properties"], name
    states = published("job-states.json")
    assert [s["name"] for s in states["states"]] == [s.value for s in JobStatus]
    assert {s["name"] for s in states["states"] if s["final"]} == {
        "COMPLETED",
        "COMPLETED_WITH_GAPS",
        "FAILED",
        "CANCELLED",
    }


def test_requests_validate_against_the_request_schema() -> None:
    check("request.schema.json", DESIGN_EXAMPLE)
    check("request.schema.json", {"lines": DESIGN_EXAMPLE["lines"]})  # job_id and trace_id may be left out
    check("request.schema.json", dict(DESIGN_EXAMPLE, schema_version=1, metadata={"tenant": "t"}))
    for bad in (
        {},  # no lines
        dict(DESIGN_EXAMPLE, job_id="../etc"),
        dict(DESIGN_EXAMPLE, colour="red"),
        dict(DESIGN_EXAMPLE, schema_version=2),
        dict(DESIGN_EXAMPLE, metadata=[1]),
    ):
        with pytest.raises(jsonschema.ValidationError):
            check("request.schema.json", bad)


def _view() -> JobView:
    req = parse_request(DESIGN_EXAMPLE)
    return JobView(req, build_slots(req))


def real_report() -> dict[str, Any]:
    """report.json as the report code writes it for DESIGN.md's example: one ok slot, one placeholder."""
    records = {
        0: ClipRecord(0, "ok", video_id="v_91f", attempts=1, frames=96, extract_ms=120.0),
        1: ClipRecord(1, "placeholder", video_id="v_17a", attempts=1, frames=116, reason="HTTP 404"),
    }
    report = build_report(
        _view(),
        records,
        status=JobStatus.COMPLETED_WITH_GAPS,
        output_path="/out/mix-20261122-0001/final.mp4",
        total_frames=212,
        measured_frames=212,
        clip_stats=ClipStats(total=2, done=2, succeeded=1, placeholder=1, assembly_ms=12.5),
    )
    return json.loads(report.model_dump_json())  # type: ignore[no-any-return]


def test_a_real_report_validates_against_the_report_schema() -> None:
    check("report.schema.json", real_report())


def test_a_status_object_and_a_callback_validate_against_theirs() -> None:
    now = datetime.now(UTC)
    job = JobDetail(
        job_id="mix-1",
        mix_request_id=None,
        trace_id="t",
        status=JobStatus.EXTRACTING,
        progress=40,
        attempt=1,
        output_path=None,
        report_path=None,
        output_url=None,
        report_url=None,
        poster_url=None,
        error=None,
        clips=ClipCounts.of(10, ["ok", "ok", "local"]),
        eta_s=12.5,
        clip_stats=None,
        metadata={"k": [1, "二"]},
        created_at=now,
        updated_at=now,
        finished_at=None,
        previous_attempts=[],
    )
    check("job.schema.json", json.loads(job.model_dump_json()))
    callback = CallbackPayload(
        timestamp=now,
        delivery_id="d1",
        job_id="mix-1",
        mix_request_id="req-1",
        trace_id="t",
        status=JobStatus.FAILED,
        attempt=2,
        output_path=None,
        report_path=None,
        output_url=None,
        report_url=None,
        poster_url=None,
        error="request invalid: lines[1].start_ms: starts at 500 ms",
        finished_at=now,
        metadata=None,
        report_summary=None,
    )
    body = json.loads(callback.model_dump_json())
    check("callback.schema.json", body)
    assert body["timestamp"].endswith("Z") and body["type"] == body["event"] == "job.finished"
