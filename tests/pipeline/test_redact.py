"""Secrets in URLs are blanked in logs, Source errors and reports (pipeline/redact)."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from pipeline import logs, redact
from pipeline.errors import SourceNotFound
from tests.logsetup import configure_test_logs


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("http://cdn.example/a.ts?sig=abc&x=1", "http://cdn.example/a.ts?sig=REDACTED&x=1"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED",
        ),
        (
            "https://d.cloudfront.net/v.m3u8?Policy=eyJ&Signature=abc~&Key-Pair-Id=K2",
            "https://d.cloudfront.net/v.m3u8?Policy=REDACTED&Signature=REDACTED&Key-Pair-Id=REDACTED",
        ),
        (
            "http://c/x.ts?token=t0k&key=k3y&hdnts=st=1~hmac=ff",
            "http://c/x.ts?token=REDACTED&key=REDACTED&hdnts=REDACTED",
        ),
        ("http://user:hunter2@c.example/x", "http://user:REDACTED@c.example/x"),
        (
            "GET http://c/a?sig=1 answered HTTP 404 (see http://c/b?SIG=2)",
            "GET http://c/a?sig=REDACTED answered HTTP 404 (see http://c/b?SIG=REDACTED)",
        ),
        ("http://c/a?monkey=1&x-api-keyring=2", "http://c/a?monkey=1&x-api-keyring=2"),  # only whole names
        ("no url here = fine", "no url here = fine"),
    ],
)
def test_text_blanks_credentials_and_keeps_the_rest(raw: str, clean: str) -> None:
    assert redact.text(raw) == clean


def test_deep_walks_reports() -> None:
    report = {"slots": [{"last_error": "http://c/a?sig=1 timed out", "n": 3}], "t": ("http://c/?token=2",)}
    assert redact.deep(report) == {
        "slots": [{"last_error": "http://c/a?sig=REDACTED timed out", "n": 3}],
        "t": ("http://c/?token=REDACTED",),
    }


def test_source_errors_are_redacted_where_they_are_made() -> None:
    exc = SourceNotFound("http://cdn/v.m3u8?sig=s3cr3t answered HTTP 404", url="http://cdn/v.m3u8?sig=s3cr3t")
    assert "s3cr3t" not in str(exc) and "s3cr3t" not in exc.url


def test_log_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO")
    try:
        structlog.get_logger("t").warning("fetch.failed", url="http://cdn/a.ts?X-Amz-Signature=s3cr3t")
        logging.getLogger("dramatiq.t").error("retrying http://cdn/a.ts?token=s3cr3t")
    finally:
        configure_test_logs()
    out = capsys.readouterr().out
    assert "s3cr3t" not in out
    first, second = (json.loads(ln) for ln in out.splitlines()[-2:])
    assert first["url"] == "http://cdn/a.ts?X-Amz-Signature=REDACTED"
    assert second["event"] == "retrying http://cdn/a.ts?token=REDACTED"
