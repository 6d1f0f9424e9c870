"""Outside audit, fixed since: a NUL character in a job id or a query parameter, on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from pipeline.store import engine_for
from tests.integration.pg import fresh_database

from .harness import api, settings_for


def test_nul_in_a_job_id_is_not_found_on_postgresql(tmp_path: Path) -> None:
    """On PostgreSQL a NUL in a job id or filter (GET /jobs/%00, ?mix_request_id=%00, /ui/jobs/%00,
    /?q=%00) answered 500 internal_error (psycopg DataError) where 404 job_not_found or 422 is due."""
    with fresh_database("audit_a") as url:
        try:
            with api(settings_for(tmp_path, db_url=url)) as client:
                answers = {
                    path: client.get(path)
                    for path in (
                        "/jobs/%00",
                        "/jobs/a%00b/video",
                        "/jobs?mix_request_id=%00",
                        "/ui/jobs/%00",
                        "/?q=%00",
                    )
                }
        finally:
            engine_for(url).dispose()  # so the throwaway database can be dropped
    codes = {path: r.status_code for path, r in answers.items()}
    assert codes["/jobs/%00"] == 404 and answers["/jobs/%00"].json()["error"]["code"] == "job_not_found", (
        codes
    )
    assert codes["/jobs/a%00b/video"] == 404, codes
    assert codes["/jobs?mix_request_id=%00"] in (200, 422), codes
    assert codes["/ui/jobs/%00"] == 404, codes
    assert codes["/?q=%00"] in (200, 422), codes
