"""Outside audit, fixed since: the job page of a job recorded from a refused broker message."""

from __future__ import annotations

from pathlib import Path

from pipeline.models import parse_request
from pipeline.store import JobStore
from tests.integration.redisdb import claimed_db

from .harness import api, csrf_of, one_line_request, settings_for


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


def test_the_page_answers_a_page_when_redis_is_down_and_the_api_its_json(tmp_path: Path) -> None:
    # Given a running job and Redis unreachable (the harness's default: a port where nothing listens)
    settings = settings_for(tmp_path)
    store = JobStore(settings.database_url)
    store.create_or_get(parse_request(one_line_request("running-1")))
    with api(settings) as client:
        # When an operator opens its page (in Chinese), and a client asks the JSON API
        page = client.get("/ui/jobs/running-1", headers={"Accept-Language": "zh-CN"})
        json_api = client.get("/jobs/running-1/report")
    # Then the page is a page (503, in the operator's language), and the API keeps its JSON error body
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html"), page.text[:200]
    assert "暂时无法连接 Redis" in page.text and "返回任务列表" in page.text
    assert json_api.status_code in (404, 503) and json_api.headers["content-type"] == "application/json"
