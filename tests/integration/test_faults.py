"""CDN faults met by the clip stage: each ends in the right retry, fallback or success, never a hang."""

from __future__ import annotations

import time

import pytest

from pipeline import clipstage, planning

from .conftest import Stack, build_request, new_job_id
from .test_stages import make_ctx

pytestmark = pytest.mark.integration


def one_clip_job(stack: Stack, video: str = "v_b", start: int = 4200, direct: bool = True):  # type: ignore[no-untyped-def]
    ctx = make_ctx(stack, CLIPLINE_HTTP_TIMEOUT_S="1")
    job_id = new_job_id("fault")
    # A window inside one 2-second segment (segment 2 at 4200 ms), so each attempt makes exactly one
    # request for the window's segment (the source's anchor, segment 0's head, is fetched alongside).
    request = build_request(
        job_id, stack.cdn, [(video, start, start + 1000, direct)], line_ms=lambda i: 1000, audio=False
    )
    planning.fanned_out(ctx, planning.plan(ctx, request))
    return ctx, job_id


def test_503_twice_then_200_is_retried_and_counted(stack: Stack) -> None:
    ctx, job_id = one_clip_job(stack)
    stack.cdn.fail_next("/hls/v_b/seg_00002", 503, times=2)
    steps = [clipstage.run_clip(ctx, job_id, 0, attempt=a, max_attempts=4) for a in (1, 2, 3)]
    assert [type(s).__name__ for s in steps] == ["Retry", "Retry", "Done"]
    done = steps[2]
    assert isinstance(done, clipstage.Done) and done.record.outcome == "ok" and done.record.attempts == 3


def test_a_stalled_segment_times_out_and_falls_back_without_hanging(stack: Stack) -> None:
    ctx, job_id = one_clip_job(stack)
    stack.cdn.stall("/hls/v_b/seg_", 30)
    started = time.monotonic()
    first = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=2)
    last = clipstage.run_clip(ctx, job_id, 0, attempt=2, max_attempts=2)
    assert isinstance(first, clipstage.Retry)
    assert isinstance(last, clipstage.Fallback) and "retries exhausted after 2 attempts" in last.reason
    assert time.monotonic() - started < 10
    done = clipstage.run_fallback(ctx, job_id, 0, last.reason)
    assert isinstance(done, clipstage.Done) and done.record.outcome == "placeholder"


def test_a_corrupt_segment_falls_back(stack: Stack) -> None:
    ctx, job_id = one_clip_job(stack)
    stack.cdn.corrupt("/hls/v_b/seg_")
    step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=4)
    assert isinstance(step, clipstage.Fallback), step  # permanent: no retry of the same bad bytes
    # Garbage is caught before ffmpeg reads it: the segment is not MPEG-TS packets
    assert step.reason.startswith("SourceInvalid: ") and "lost MPEG-TS sync" in step.reason, step.reason


def test_a_404_goes_to_fallback_without_retries(stack: Stack) -> None:
    ctx, job_id = one_clip_job(stack)
    stack.cdn.set_gone("v_b")
    step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=4)
    assert isinstance(step, clipstage.Fallback) and "404" in step.reason


def test_the_video_api_429_is_honoured(stack: Stack) -> None:
    stack.cdn.reset_counters()
    stack.cdn.fail_next("/v1.3/", 429, times=1, retry_after_s=0.5)
    started = time.monotonic()
    ctx, job_id = one_clip_job(stack, direct=False)  # resolved through the API during planning
    assert time.monotonic() - started >= 0.5
    step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=4)
    assert isinstance(step, clipstage.Done) and step.record.outcome == "ok"
    assert stack.cdn.api_calls["v_b"] == 2  # the 429, then the answer; never again for this job


def test_a_playlist_naming_local_files_cannot_make_us_read_them(stack: Stack) -> None:
    evil = stack.samples.root / "hls" / "v_evil"
    evil.mkdir(parents=True, exist_ok=True)
    (evil / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    ctx, job_id = one_clip_job(stack, video="v_evil", start=0)
    step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=4)
    assert isinstance(step, clipstage.Fallback) and "only http(s) is read" in step.reason
