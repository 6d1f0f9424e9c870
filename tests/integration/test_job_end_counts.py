"""A job ended by a process that serves no metrics (``clipline cancel``) is counted by the workers'."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from pipeline import keys
from pipeline.store import JobStore

from .conftest import Stack, build_request, new_job_id
from .private import free_port

pytestmark = pytest.mark.integration

CANCELLED = 'clipline_jobs_total{status="CANCELLED"}'


def _cancelled_count(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(CANCELLED))


def test_a_job_cancelled_on_the_command_line_is_counted_by_the_workers_metrics(stack: Stack) -> None:
    redis.Redis.from_url(stack.env["CLIPLINE_REDIS_URL"]).delete(keys.job_ends_to_count())  # earlier tests'
    metrics_port = free_port()
    stack.cdn.stall("/hls/v_a/seg_", 20)  # the clips wait for their segments: the job stays EXTRACTING
    stack.start_workers("--stage", "all", "--concurrency", "2", "--metrics-port", str(metrics_port))
    job_id = new_job_id("count-cancel")
    body = build_request(
        job_id,
        stack.cdn,
        [("v_a", 500 * i, 500 * i + 1500, True) for i in range(12)],
        line_ms=lambda i: 1500,
        audio=False,
    )
    try:
        assert stack.cli("submit", "-", input_json=body).returncode == 0
        store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
        deadline = time.monotonic() + 90
        while store.get(job_id).status != "EXTRACTING" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _cancelled_count(metrics_port) == 0
        # When the job is cancelled by `clipline cancel`, a process that serves no metrics and exits
        done = stack.cli("cancel", job_id)
        assert done.returncode == 0 and "CANCELLED" in done.stdout, done.stdout + done.stderr
        # Then the workers' endpoint counts it once, within seconds
        deadline = time.monotonic() + 15
        while _cancelled_count(metrics_port) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.5)  # every worker process polls each second: nothing is counted twice
        assert _cancelled_count(metrics_port) == 1
    finally:
        stack.cdn.reset_faults()
