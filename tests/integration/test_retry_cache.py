"""A retry takes its clips from the clip cache: real workers, broker, Redis, CDN and ffmpeg."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clipline.dev.samples import read_frames

from .conftest import Stack, new_job_id
from .faultkit import init_db, small_request, submit, wait_final

pytestmark = pytest.mark.integration


def slots(result: dict[str, Any]) -> list[tuple[str, str | None]]:
    report = json.loads(Path(result["report_path"]).read_text())
    return [(s["outcome"], s.get("cache")) for s in report["slots"]]


def segment_bytes(stack: Stack) -> int:
    return sum(stack.cdn.total_bytes(f"/hls/{video}/seg_") for video in ("v_a", "v_b"))


def test_a_failed_job_retried_takes_its_clips_from_the_cache(stack: Stack) -> None:
    stack.env["CLIPLINE_CLIP_CACHE_BYTES"] = str(200 * 2**20)
    init_db(stack)
    # Given a 4-line job whose song is gone (404 on every try): its clips are cut, the job fails
    stack.cdn.fail_next("/audio/", 404, 1_000_000)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("retrycache")
    request = small_request(stack, job_id, 4)
    submit(stack, request)
    first = wait_final(stack, job_id)
    assert first["status"] == "FAILED"
    assert slots(first) == [("ok", "miss")] * 4
    # When the song is back and the job is retried (a FAILED job is rendered again whole)
    stack.cdn.fail_next("/audio/", 404, 0)
    segments_before = segment_bytes(stack)
    assert segments_before > 0
    res = stack.cli("retry", job_id, timeout=120)
    assert res.returncode == 0, res.stderr
    second = wait_final(stack, job_id)
    # Then every clip comes from the cache: nothing cut, no segment fetched, the same frames
    assert second["status"] == "COMPLETED"
    assert slots(second) == [("ok", "hit")] * 4
    assert segment_bytes(stack) == segments_before  # (the playlists are read again: the cache key)
    want = [line["clip"]["start_ms"] * 30 // 1000 + i for line in request["lines"] for i in range(30)]
    assert read_frames(Path(second["output_path"])) == want
