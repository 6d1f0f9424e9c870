"""DESIGN.md, Observability: "jobs by final status (counter)"; README: `clipline_jobs_total{status}`,
`clipline_job_duration_seconds`, and "A job's end logs `job.finished`"."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from pipeline import planning, reconcile
from pipeline.models import JobStatus
from pipeline.observe import Observer
from tests.stubs import stub_context


class Recording(Observer):
    """The observer the workers' Prometheus metrics are fed through, recording what it is told."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, float]] = []

    def job_finished(self, status: str, duration_s: float) -> None:
        self.finished.append((status, duration_s))


def _events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict)]


def test_a_job_the_reconciler_fails_is_counted_and_logged_as_finished(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A job the reconciler gives up on ends FAILED without `Observer.job_finished` (so no
    clipline_jobs_total{status="FAILED"} / job duration sample) and without a `job.finished` log line."""
    observer = Recording()
    ctx = stub_context(tmp_path, server=fakeredis.FakeServer(), observer=observer)
    line = {
        "text": "a",
        "start_ms": 0,
        "end_ms": 1000,
        "clip": {"video_id": "v", "start_ms": 0, "end_ms": 900},
    }
    ctx.store.create_or_get(
        planning.validate(ctx, {"job_id": "j-stuck", "lines": [line]})
    )  # its plan is lost
    caplog.set_level(logging.INFO)
    for _ in range(ctx.settings.reconcile_max_repairs + 1):
        reconcile.sweep(ctx, lambda *a, **k: None, stale_s=0)
    assert ctx.store.get("j-stuck").status == JobStatus.FAILED.value  # the job did end, FAILED
    events = _events(caplog)
    assert any(
        e.get("event") == "reconcile.gave_up" for e in events
    )  # the capture sees the reconciler's lines

    assert [status for status, _ in observer.finished] == ["FAILED"]
    assert [e for e in events if e.get("event") == "job.finished" and e.get("job_id") == "j-stuck"]
