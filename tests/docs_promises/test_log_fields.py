"""DESIGN.md "Observability": every log line has ts, level, event, trace_id, job_id; README: a job's end
logs ``job.finished`` once, in the process that ended it (``clipline cancel`` for a cancel)."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import clipline, one_line_request, scratch_env


def test_job_finished_of_a_cancel_carries_the_jobs_trace_id(tmp_path: Path, redis_url: str) -> None:
    """``clipline cancel JOB`` logs ``job.finished`` with the job's trace_id, as the assembler's does.
    Before: ``"trace_id": null`` (pipeline/jobs.py:cancel called job_end.finished without
    pipeline.logs.bind_job), so the line that says the job ended could not be joined to upstream's
    trace."""
    env = scratch_env(tmp_path, CLIPLINE_REDIS_URL=redis_url)  # broker dead: the job is recorded PENDING
    request = tmp_path / "req.json"
    request.write_text(json.dumps(one_line_request("af-trace-1")))
    submitted = clipline(env, "submit", str(request))
    assert submitted.returncode == 3, submitted.stderr  # broker unavailable; recorded as PENDING
    done = clipline(env, "cancel", "af-trace-1")
    assert done.returncode == 0, done.stderr
    finished = [
        json.loads(ln)
        for ln in done.stdout.splitlines()
        if ln.startswith("{") and json.loads(ln).get("event") == "job.finished"
    ]
    assert len(finished) == 1, done.stdout
    assert finished[0]["job_id"] == "af-trace-1"
    assert finished[0]["trace_id"] == "4bf92f3577b34da6", finished[0]
