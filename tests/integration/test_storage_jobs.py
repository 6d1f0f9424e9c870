"""A job's objects in S3 (moto on loopback) through the service functions: retention, retry, cancel,
the URLs of the status object and of callbacks. The workers' part is in test_s3_hosts.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from clipline.dev.s3 import LoopbackS3
from pipeline import jobs, results, retention, webhooks
from pipeline.context import Context
from pipeline.models import ClipOutcome, ClipRecord, JobStatus, parse_request
from pipeline.storage import layout
from tests.stubs import stub_context

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    with LoopbackS3("clipline-jobs", log=tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture
def ctx(s3: LoopbackS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    s3.reset()
    for k, v in s3.env().items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    env = {k: v for k, v in s3.env().items() if k.startswith("CLIPLINE_")}
    return stub_context(tmp_path, **env, CLIPLINE_S3_URL_TTL_S="900")


#: A report summary as assembly writes it (what callbacks carry, without missing_footage).
SUMMARY = {"slots": 2, "ok": 1, "local": 0, "placeholder": 1, "failed": 0, "text": ["1 line lacks footage"]}


def finished_job(ctx: Context, job_id: str, status: JobStatus, lines: int = 2) -> None:
    """A job record that ended, with its clips, sidecars and results in the store."""
    request = parse_request(
        {
            "job_id": job_id,
            "callback_url": "http://127.0.0.1:9/cb",
            "lines": [
                {
                    "start_ms": i * 1000,
                    "end_ms": i * 1000 + 1000,
                    "clip": {"video_id": "v", "start_ms": 0, "end_ms": 900},
                }
                for i in range(lines)
            ],
        }
    )
    ctx.store.create_or_get(request)
    for i in range(lines):
        outcome = ClipOutcome.OK if i == 0 or status == JobStatus.COMPLETED else ClipOutcome.PLACEHOLDER
        ctx.storage.put_bytes(layout.clip(job_id, i), b"clip")
        rec = ClipRecord(i, outcome, ctx.storage.uri(layout.clip(job_id, i)), "v")
        ctx.storage.put_bytes(layout.clip_record(job_id, i), json.dumps(rec.to_json()).encode())
    for name, body in (
        (layout.FINAL, b"video"),
        (layout.REPORT, json.dumps({"summary": SUMMARY}).encode()),
        (layout.POSTER, b"jpg"),
    ):
        ctx.storage.put_bytes(results.key(job_id, name), body)
    ctx.store.advance(
        job_id,
        status=status,
        output_path=ctx.storage.uri(results.key(job_id, layout.FINAL)),
        report_path=ctx.storage.uri(results.key(job_id, layout.REPORT)),
        metrics={"render": {"poster": True}},
    )


def keys(s3: LoopbackS3, job_id: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=s3.prefix)
    return sorted(
        o["Key"].removeprefix(f"{s3.prefix}/")
        for page in pages
        for o in page.get("Contents", [])
        if f"/{job_id}/" in o["Key"]
    )


def test_status_object_and_callback_carry_presigned_urls(ctx: Context, s3: LoopbackS3) -> None:
    finished_job(ctx, "urls-1", JobStatus.COMPLETED)
    job = ctx.store.get("urls-1")
    obj = jobs.describe(ctx, job).model_dump(mode="json")
    assert obj["output_path"] == f"s3://{s3.bucket}/{s3.prefix}/output/urls-1/final.mp4"
    for field, body in (("output_url", b"video"), ("poster_url", b"jpg")):
        url = str(obj[field])
        assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["900"]
        assert httpx.get(url).content == body
    callback = webhooks.payload(ctx, job, "d1").model_dump(mode="json")
    assert callback["output_url"] and callback["report_url"] and callback["report_summary"] == SUMMARY
    # a job without a video has no video or poster URL
    job.output_path = None
    got = jobs.describe(ctx, job)
    assert got.output_url is None and got.poster_url is None and got.report_url


def test_retention_removes_the_objects_of_old_jobs_only(ctx: Context, s3: LoopbackS3) -> None:
    finished_job(ctx, "old-1", JobStatus.COMPLETED_WITH_GAPS)
    finished_job(ctx, "old-10", JobStatus.COMPLETED)  # a job id that old-1's prefix must not catch
    assert len(keys(s3, "old-1")) == 7
    later = datetime.now(UTC) + timedelta(hours=1)
    # --keep-outputs: the clips go, the results stay
    gone = retention.cleanup(ctx, 60, keep_outputs=True, now=later)
    assert {r.job_id for r in gone} == {"old-1", "old-10"} and all(r.bytes > 0 for r in gone)
    assert keys(s3, "old-1") == [
        "output/old-1/final.mp4",
        "output/old-1/poster.jpg",
        "output/old-1/report.json",
    ]
    # then everything, with the record
    retention.cleanup(ctx, 60, now=later)
    assert keys(s3, "old-1") == [] and keys(s3, "old-10") == []


def test_retry_keeps_the_attempt_and_forgets_the_slots_it_redoes(ctx: Context, s3: LoopbackS3) -> None:
    finished_job(ctx, "retry-1", JobStatus.COMPLETED_WITH_GAPS)
    sent: list[object] = []
    done = jobs.retry(ctx, "retry-1", sent.append)
    assert done.slots == [1] and sent
    assert keys(s3, "retry-1") == [
        "output/retry-1/final.attempt-1.mp4",
        "output/retry-1/report.attempt-1.json",
        "work/retry-1/clips/0000.json",
        "work/retry-1/clips/0000.mp4",
    ]
    history = ctx.store.history("retry-1")[0]
    assert history.output_path == f"s3://{s3.bucket}/{s3.prefix}/output/retry-1/final.attempt-1.mp4"


def test_cancel_removes_the_clips_from_the_store(ctx: Context, s3: LoopbackS3) -> None:
    request = parse_request(
        {
            "job_id": "cancel-1",
            "lines": [
                {"start_ms": 0, "end_ms": 1000, "clip": {"video_id": "v", "start_ms": 0, "end_ms": 900}}
            ],
        }
    )
    ctx.store.create_or_get(request)
    ctx.storage.put_bytes(layout.clip("cancel-1", 0), b"clip")
    jobs.cancel(ctx, "cancel-1")
    assert keys(s3, "cancel-1") == []
