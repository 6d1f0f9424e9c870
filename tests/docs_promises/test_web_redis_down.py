"""The operations page (README "In a browser"): jobs list and job pages while Redis is down. The JSON API
answers the same jobs (``clips`` null: CONTRACTS "clips is null when Redis cannot be reached"); so
does the page now (before audit F it answered 503 "Service unavailable" for them)."""

from __future__ import annotations

from pathlib import Path

from pipeline.models import JobStatus, parse_request
from tests.http_edges.harness import api, completed_job, one_line_request, settings_for


def test_jobs_list_with_redis_down_shows_every_job_with_running_counts_unknown(tmp_path: Path) -> None:
    """With Redis unreachable, ``GET /`` lists every job (200), a running job's clip counts unknown,
    as ``GET /jobs`` answers ``clips: null``. Before: 503 "Service unavailable" as soon as one listed
    job had not ended (clipline/web/job_list.py:counts read Redis unguarded), hiding every job."""
    settings = settings_for(tmp_path)  # Redis and the broker: dead ports
    store = completed_job(settings, "af-done-1")
    store.create_or_get(parse_request(one_line_request("af-run-2")))
    assert store.advance("af-run-2", status=JobStatus.EXTRACTING)
    with api(settings) as client:
        assert client.get("/jobs").status_code == 200
        page = client.get("/")
        assert page.status_code == 200, page.status_code
        assert "af-done-1" in page.text and "af-run-2" in page.text


def test_page_of_an_ended_job_without_report_answers_from_the_record_with_redis_down(
    tmp_path: Path,
) -> None:
    """The page of a job that ended without a report (CANCELLED; or FAILED before assembly) answers
    200 from the record while Redis is down, as ``GET /jobs/{id}`` does. Before: 503
    (clipline/web/job_page.py:_records read the slots' outcomes from Redis, unguarded)."""
    settings = settings_for(tmp_path)
    store = completed_job(settings, "af-done-3")  # COMPLETED, no report recorded
    store.create_or_get(parse_request(one_line_request("af-cancel-4")))
    assert store.advance("af-cancel-4", status=JobStatus.CANCELLED, error="cancelled on request")
    with api(settings) as client:
        assert client.get("/jobs/af-cancel-4").status_code == 200
        page = client.get("/ui/jobs/af-cancel-4")
        assert page.status_code == 200, page.status_code
