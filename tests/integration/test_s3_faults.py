"""A store that cannot be used: workers refuse to start naming why; mid-job, the job fails naming it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clipline.dev.s3 import LoopbackS3, _free_port

from .conftest import Stack, new_job_id
from .faultkit import clip_events, init_db, small_request, submit, wait_final

pytestmark = pytest.mark.integration


def refused(stack: Stack, code: int = 3, **env: str) -> str:
    """Start a clip worker with ``env``: it must exit at once with ``code``; returns what it said."""
    stack.env.update(env)
    res = stack.cli("worker", "--stage", "clip", timeout=120)
    assert res.returncode == code, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    return res.stderr


def test_worker_refuses_to_start_without_a_usable_store(stack: Stack, tmp_path: Path) -> None:
    with LoopbackS3("clipline-authed", auth=True, log=tmp_path / "moto.log") as s3:
        fine = s3.env()
        # a bucket that does not exist
        said = refused(stack, **{**fine, "CLIPLINE_STORAGE_URL": "s3://no-such-bucket/renders"})
        assert "bucket 'no-such-bucket' does not exist" in said
        # credentials the store rejects
        said = refused(stack, **{**fine, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
        assert "credentials rejected" in said and "s3://clipline-authed/renders" in said
    # a store nobody answers
    nobody = {"CLIPLINE_S3_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}", "CLIPLINE_S3_MAX_ATTEMPTS": "1"}
    said = refused(stack, **{**fine, **nobody})
    assert "unreachable" in said
    # a storage URL that is not one (a setting's error: exit 2)
    said = refused(stack, 2, CLIPLINE_STORAGE_URL="ftp://host/x")
    assert "CLIPLINE_STORAGE_URL" in said


def test_a_store_lost_mid_job_fails_the_job_naming_it(stack: Stack, tmp_path: Path) -> None:
    # Given workers that started against a healthy store
    s3 = LoopbackS3("clipline-lost", log=tmp_path / "moto.log").start()
    stack.env.update({**s3.env(), "CLIPLINE_S3_MAX_ATTEMPTS": "1", "CLIPLINE_S3_ABORT_UPLOADS_AFTER_S": "0"})
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        "Worker process is ready" in log.read_text(errors="replace") for log in stack.logs
    ):
        time.sleep(0.2)
    # When the store goes away before the job's clips are published
    s3.stop()
    job_id = new_job_id("s3-lost")
    submit(stack, small_request(stack, job_id, 2, audio=False))
    result = wait_final(stack, job_id, timeout=240)
    # Then each clip was retried as transient, and the job failed naming the storage error
    assert result["status"] == "FAILED", result
    assert "StorageUnavailable" in result["error"] and "unreachable" in result["error"], result["error"]
    assert clip_events(stack, job_id, ("retrying",)), "the storage error was not retried"
