"""Outside audit, fixed since: GET /jobs/{id}/report when the object store cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import api, closed_port, completed_job, settings_for


def test_report_answers_unavailable_when_the_store_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With S3 unreachable, GET /jobs/{id}/report answered 500 ``internal_error`` (a bug, per CONTRACTS.md),
    with the store's endpoint in the message, while /video of the same job answers 503 ``unavailable``."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = settings_for(
        tmp_path,
        CLIPLINE_STORAGE_URL="s3://results/clipline",
        CLIPLINE_S3_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}",  # nothing answers: the store is down
        CLIPLINE_S3_MAX_ATTEMPTS="1",
    )
    completed_job(
        settings,
        "stored-1",
        output_path="s3://results/clipline/output/stored-1/final.mp4",
        report_path="s3://results/clipline/output/stored-1/report.json",
    )
    with api(settings) as client:
        video = client.get("/jobs/stored-1/video")
        assert video.status_code == 503 and video.json()["error"]["code"] == "unavailable"
        report = client.get("/jobs/stored-1/report")
        assert report.status_code == 503, report.text[:400]
        assert report.json()["error"]["code"] == "unavailable"
