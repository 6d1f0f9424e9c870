"""Outside audit, fixed since: the job page of a job recorded from a refused broker message."""

from __future__ import annotations

from pathlib import Path

from pipeline.store import JobStore
from tests.integration.redisdb import claimed_db

from .harness import api, csrf_of, settings_for


def test_job_page_of_a_refused_request_shows_the_job(tmp_path: Path) -> None:
    """The job page (and its retry action) answered 500 for a job that a refused broker message recorded
    as FAILED, because job_page.load validates the stored request, which by definition does not validate."""
    with claimed_db("audit-a") as redis_url:
        settings = settings_for(tmp_path, redis_url=redis_url)
        # What pipeline.rejects.reject records for a message whose request failed validation
        # (CONTRACTS.md "A message that can never be processed"): FAILED, every problem in error.
        refused = {"job_id": "refused-1", "lines": "not a list", "mix_request_id": "mix-7"}
        error = "request invalid: lines: Input should be a valid list"
        assert JobStore(settings.database_url).record_invalid("refused-1", refused, error)
        with api(settings) as client:
            assert client.get("/jobs/refused-1").json()["status"] == "FAILED"  # the JSON API shows it
            page = client.get("/ui/jobs/refused-1")
            assert page.status_code == 200, page.text[:300]
            assert "Input should be a valid list" in page.text
            live = client.get("/ui/jobs/refused-1/live")
            assert live.status_code == 200, live.text[:300]
            # Retry from the page: refused jobs are not retryable (409, as POST /jobs/{id}/retry says)
            retry = client.post(
                "/ui/jobs/refused-1/retry", data={"csrf": csrf_of(client), "confirmed": "yes"}
            )
            assert retry.status_code == 409, retry.text[:300]
