"""DESIGN.md, Observability: "jobs by final status (counter)"; README: `clipline_jobs_total{status}` and
"A job's end logs `job.finished`"; CANCELLED is one of the four final states (job-states.json)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.integration.conftest import Stack, build_request, new_job_id
from tests.integration.private import free_port
from tests.integration.test_api import running_api

pytestmark = pytest.mark.integration


def test_a_cancelled_job_is_counted_and_logged_as_finished(stack: Stack) -> None:
    """A job cancelled through POST /jobs/{id}/cancel ends CANCELLED, but no process (API or worker)
    ever counts it in clipline_jobs_total{status="CANCELLED"} or logs `job.finished` for it."""
    metrics_port = free_port()
    stack.cdn.latency_ms = 300
    stack.start_workers("--stage", "all", "--concurrency", "2", "--metrics-port", str(metrics_port))
    job_id = new_job_id("auditc-cancel")
    body = build_request(
        job_id,
        stack.cdn,
        [("v_a", 500 * i, 500 * i + 1500, True) for i in range(12)],
        line_ms=lambda i: 1500,
        audio=False,
    )
    try:
        with running_api(stack) as api:
            assert api.post("/jobs", json=body).status_code == 202
            deadline = time.monotonic() + 90
            while api.get(f"/jobs/{job_id}").json()["status"] != "EXTRACTING" and time.monotonic() < deadline:
                time.sleep(0.2)
            cancelled = api.post(f"/jobs/{job_id}/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
            time.sleep(4)  # workers notice the cancel within a second
            scrapes = {
                "api": api.get("/metrics").text,
                "worker": httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text,
            }
    finally:
        stack.cdn.latency_ms = 0
    counted = {
        where: [ln for ln in text.splitlines() if ln.startswith('clipline_jobs_total{status="CANCELLED"}')]
        for where, text in scrapes.items()
    }
    logged = [e for e in stack.events("job.finished") if e.get("job_id") == job_id]
    for api_log in stack.tmp.glob("api-*.log"):
        for ln in api_log.read_text(errors="replace").splitlines():
            if ln.startswith("{") and '"job.finished"' in ln and json.loads(ln).get("job_id") == job_id:
                logged.append(json.loads(ln))
    assert any(counted.values()), counted
    assert logged, "no job.finished line for the cancelled job"
