"""Hosts that share nothing but the services: clips and results in S3 (moto's server on loopback).

Each "host" is a ``clipline worker`` with a work and output directory of its
own; RabbitMQ, Redis, PostgreSQL and the S3 server are all they share. A clip
cut on one host is assembled on another, so the job only ends if every clip
really went through the store.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clipline.dev.s3 import LoopbackS3
from clipline.dev.samples import count_frames
from pipeline.models import parse_request
from pipeline.timeline import total_frames

from .conftest import Stack, build_request, new_job_id
from .faultkit import init_db, job_events, sigkill_worker, small_request, submit, wait_final, wait_for

pytestmark = pytest.mark.integration

LINE_MS = [1200, 900, 1500, 700, 1100, 1300, 1000, 1600]
FAST_RECONCILE = {"CLIPLINE_RECONCILE_INTERVAL_S": "1", "CLIPLINE_RECONCILE_AFTER_S": "3"}


def picks_60() -> list[tuple[str, int, int, bool]]:
    """60 lines over two CDN videos (one through the video API), two from a local copy, one gone."""
    out: list[tuple[str, int, int, bool]] = []
    for i in range(60):
        if i in (13, 41):
            out.append(("v_local", 1000 + i * 50, 2500 + i * 50, False))
        elif i == 27:
            out.append(("v_gone", 0, 1000, False))
        elif i % 3 == 1:
            start = (i * 700) % 9000
            out.append(("v_b", start, start + 800 + (i % 4) * 300, False))
        else:
            start = (i * 1300) % 16000 + 33
            out.append(("v_a", start, start + 1000 + (i % 5) * 250, True))
    return out


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    with LoopbackS3("clipline-it", log=tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


def s3_env(server: LoopbackS3) -> dict[str, str]:
    # moto answers every upload's Initiated with one fixed date in 2010: abort lost uploads only by
    # their job's end here, never by age (which would abort the live ones).
    return {**server.env(), "CLIPLINE_S3_ABORT_UPLOADS_AFTER_S": "0"}


def start_host(stack: Stack, host: str, *args: str) -> subprocess.Popen[bytes]:
    """A worker with directories of its own: nothing on disk is shared with another host."""
    root = stack.tmp / "hosts" / host
    saved = dict(stack.env)
    stack.env.update({"CLIPLINE_WORK_DIR": str(root / "work"), "CLIPLINE_OUTPUT_DIR": str(root / "output")})
    try:
        return stack.start_workers(*args, name=host)
    finally:
        stack.env.clear()
        stack.env.update(saved)


def decoded_frames(video: Path) -> list[str]:
    """md5 of every decoded video frame (ffmpeg -f framemd5), timestamps included."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-map", "0:v:0", "-f", "framemd5", "-"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    return [ln for ln in out.splitlines() if ln and not ln.startswith("#")]


def download(url: str, dest: Path) -> Path:
    got = httpx.get(url, timeout=60)
    assert got.status_code == 200, (url, got.status_code, got.text[:300])
    dest.write_bytes(got.content)
    return dest


def objects(server: LoopbackS3, prefix: str) -> list[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def open_uploads(server: LoopbackS3, prefix: str) -> list[str]:
    got = server.client().list_multipart_uploads(Bucket=server.bucket, Prefix=prefix)
    return [u["Key"] for u in got.get("Uploads", [])]


def hosts_that_cut(stack: Stack, job_id: str) -> set[str]:
    """The hosts whose logs show a clip of the job cut from its source."""
    hosts = set()
    for log in stack.logs:
        for ln in log.read_text(errors="replace").splitlines():
            if ln.startswith("{") and '"succeeded"' in ln:
                e = json.loads(ln)
                if e.get("job_id") == job_id and e.get("clip_status") == "succeeded":
                    hosts.add(log.name.split("-")[0])
    return hosts


def render_result(stack: Stack, job_id: str, timeout: float = 400) -> dict[str, Any]:
    result = wait_final(stack, job_id, timeout=timeout)
    assert result["status"] in ("COMPLETED", "COMPLETED_WITH_GAPS"), result
    return result


def test_two_clip_hosts_and_an_assembler_share_only_the_services(
    stack: Stack, s3: LoopbackS3, pg_url: str
) -> None:
    # Given three hosts on S3 and PostgreSQL: A plans and cuts, B cuts and falls back, C assembles
    s3.reset()
    stack.env.update({**s3_env(s3), "CLIPLINE_DATABASE_URL": pg_url})
    start_host(stack, "a", "--stage", "plan")
    start_host(stack, "a", "--stage", "clip", "--concurrency", "2")
    start_host(stack, "b", "--stage", "clip", "--concurrency", "2")
    start_host(stack, "b", "--stage", "fallback")
    start_host(stack, "c", "--stage", "assemble")
    job_id = new_job_id("hosts")
    request = build_request(job_id, stack.cdn, picks_60(), line_ms=lambda i: LINE_MS[i % len(LINE_MS)])

    # When a 60-line job is submitted
    submit(stack, request)
    result = render_result(stack, job_id)

    # Then it was assembled once, with the right number of frames, from clips cut on both hosts
    assert result["status"] == "COMPLETED_WITH_GAPS", result
    assert len(stack.job_finished(job_id)) == 1
    assert len(job_events(stack, "assemble.started", job_id)) == 1
    assert hosts_that_cut(stack, job_id) == {"a", "b"}
    expected = total_frames(parse_request(request))
    assert result["output_path"] == f"s3://{s3.bucket}/{s3.prefix}/output/{job_id}/final.mp4"
    final = download(result["output_url"], stack.tmp / "s3-final.mp4")
    assert count_frames(final) == expected
    report = json.loads(httpx.get(result["report_url"]).content)
    assert [s["outcome"] for s in report["slots"]].count("placeholder") == 1
    assert all(s["measured_frames"] == s["slot_frames"] for s in report["slots"])
    poster = httpx.get(result["poster_url"])
    assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"
    # the results are in the bucket; a job with gaps keeps its clips there for a retry
    assert objects(s3, f"{s3.prefix}/output/{job_id}/") == [
        f"{s3.prefix}/output/{job_id}/{n}" for n in ("final.mp4", "poster.jpg", "report.json")
    ]
    clips = objects(s3, f"{s3.prefix}/work/{job_id}/clips/")
    assert sum(k.endswith(".mp4") for k in clips) == 60 and sum(k.endswith(".json") for k in clips) == 60
    assert open_uploads(s3, s3.prefix) == []
    # and no host holds another's files: no output on any disk, no clip left on the assembler's
    for host in ("a", "b", "c"):
        out = stack.tmp / "hosts" / host / "output"
        assert not out.exists() or not any(out.rglob("*.mp4")), host
    assert not any((stack.tmp / "hosts" / "c" / "work").rglob("*.mp4"))

    # And the same job on the file backend, on one host, gives the same frames
    stack.stop_workers()
    file_job = new_job_id("hosts-file")
    stack.env = {
        k: v for k, v in stack.env.items() if not k.startswith(("CLIPLINE_S3_", "CLIPLINE_STORAGE", "AWS_"))
    }
    stack.env["CLIPLINE_DATABASE_URL"] = f"sqlite:///{stack.tmp}/file.db"
    stack.start_workers("--stage", "all", "--concurrency", "2", name="file")
    submit(stack, dict(request, job_id=file_job))
    file_result = render_result(stack, file_job)
    assert file_result["output_path"] == str(stack.tmp / "output" / file_job / "final.mp4")
    assert file_result["output_url"].endswith(f"/jobs/{file_job}/video")
    assert decoded_frames(Path(file_result["output_path"])) == decoded_frames(final)


def test_a_clip_worker_killed_mid_upload(stack: Stack, tmp_path: Path) -> None:
    # Given an S3 server where each multipart part waits 1.5 s, and clips uploaded in parts
    with LoopbackS3("clipline-kill", part_delay_ms=1500, log=tmp_path / "moto.log") as s3:
        stack.env.update({**s3_env(s3), **FAST_RECONCILE, "CLIPLINE_S3_MULTIPART_THRESHOLD_BYTES": "1024"})
        init_db(stack)
        start_host(stack, "a", "--stage", "plan")
        start_host(stack, "a", "--stage", "fallback")
        start_host(stack, "a", "--stage", "assemble")
        doomed = start_host(stack, "b", "--stage", "clip", "--concurrency", "2")
        job_id = new_job_id("kill-upload")
        request = small_request(stack, job_id, 8)
        submit(stack, request)

        # When the only clip worker is SIGKILLed while one of its clips is half uploaded
        work = f"{s3.prefix}/work/{job_id}/clips/"
        wait_for("an upload in flight", lambda: bool(open_uploads(s3, work)), timeout=120, every=0.02)
        sigkill_worker(doomed)
        lost = open_uploads(s3, work)
        assert lost, "the upload ended before the kill"
        state = httpx.get(f"{s3.endpoint_url}/{s3.bucket}?list-type=2&prefix={work}").text
        for key in lost:  # nothing half-written is visible under the key being uploaded
            assert f"<Key>{key}</Key>" not in state
        start_host(stack, "c", "--stage", "clip", "--concurrency", "2")  # another host takes over

        # Then the job ends, assembled once, with every frame
        result = render_result(stack, job_id, timeout=240)
        assert len(stack.job_finished(job_id)) == 1
        final = download(result["output_url"], tmp_path / "final.mp4")
        assert count_frames(final) == total_frames(parse_request(request))
        # and the dead worker's upload is aborted once its job has ended
        wait_for("the lost upload to be aborted", lambda: not open_uploads(s3, s3.prefix), timeout=30)
        aborted = [e for e in stack.events("storage.upload_aborted") if e.get("key", "").startswith("work/")]
        assert {e["key"] for e in aborted} >= {k.removeprefix(f"{s3.prefix}/") for k in lost}
