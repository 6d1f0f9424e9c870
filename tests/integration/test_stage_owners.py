"""Who may end a job: a dead planner's lock is freed, a Redis restart never doubles a live assembler, and
an assembly superseded by another one or by a cancel and retry publishes nothing and changes nothing.

Found by an outside audit (each test failed before its fix). Real workers, RabbitMQ, Redis and ffmpeg;
an ffmpeg wrapper holds an assembly's concat run, a ``sitecustomize`` hook holds one planner mid-plan.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import redis

from actors.sender import Sender
from pipeline import jobs
from pipeline.context import Context
from pipeline.settings import load_settings
from pipeline.store import JobStore
from tests.integration.conftest import Stack, build_request, new_job_id
from tests.integration.faultkit import (
    FINAL_JOB,
    clip_events,
    init_db,
    sigkill_worker,
    small_request,
    submit,
    wait_for,
)

pytestmark = pytest.mark.integration

PLAN_HOLD = Path(__file__).resolve().parent / "plan_hold"


def held_assembly_ffmpeg(stack: Stack, flag: Path, held: Path) -> str:
    """An ffmpeg whose assembly run (the one reading concat.txt) waits, while ``flag`` exists, until the
    test removes its ``held/<pid>`` file: each assembler's concat is released one by one."""
    bin_dir = stack.tmp / "held-ffmpeg"
    bin_dir.mkdir()
    held.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        real = shutil.which(name)
        assert real
        hold = (
            f'case "$*" in *concat.txt*) if [ -e "{flag}" ]; then touch "{held}/$$"; '
            f'while [ -e "{held}/$$" ]; do sleep 0.05; done; fi;; esac\n'
            if name == "ffmpeg"
            else ""
        )
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\n{hold}exec {real} "$@"\n')
        script.chmod(0o755)
    return str(bin_dir / "ffmpeg")


def holders(held: Path) -> list[Path]:
    return sorted(held.iterdir(), key=lambda p: p.stat().st_mtime_ns)


def _events(stack: Stack, event: str, job_id: str) -> list[dict[str, object]]:
    return [e for e in stack.events(event) if e.get("job_id") == job_id]


def test_a_planner_sigkilled_before_its_fan_out_has_its_plan_lock_freed_and_the_job_ends(
    stack: Stack,
) -> None:
    stale_s, interval_s, max_repairs = 1.0, 0.5, 3
    stack.env.update(
        {
            "CLIPLINE_RECONCILE_AFTER_S": str(stale_s),
            "CLIPLINE_RECONCILE_INTERVAL_S": str(interval_s),
            "CLIPLINE_RECONCILE_MAX_REPAIRS": str(max_repairs),
        }
    )
    init_db(stack)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    # Given a planner held after it took the plan lock (job PLANNING), before its fan-out, and SIGKILLed
    hold = stack.tmp / "hold-plan"
    hold.touch()
    plain_env = stack.env
    stack.env = {
        **plain_env,
        "HOLD_PLAN_AT": str(hold),
        "PYTHONPATH": f"{PLAN_HOLD}:{plain_env['PYTHONPATH']}",
    }
    planner = stack.start_workers("--stage", "plan", "--concurrency", "1", name="held-plan")
    stack.env = plain_env
    job_id = new_job_id("plan-kill")
    submit(stack, small_request(stack, job_id, lines=3))
    wait_for("the planner held between its plan lock and its fan-out", Path(f"{hold}.reached").exists, 120)
    assert store.get(job_id).status == "PLANNING"
    sigkill_worker(planner)
    killed_at = time.monotonic()
    hold.unlink()
    # When a healthy worker (its sweeper is the reconciler) takes over
    stack.start_workers("--stage", "all", "--concurrency", "2", name="all")
    # Then the dead planner's lock is freed once its heartbeat expired (10 s), not after PLAN_LOCK_S
    # (600 s): the plan is re-sent and the job rendered, within the reconciler's bound
    bound_s = 10 + (max_repairs + 1) * (stale_s + interval_s) + 20
    wait_for("the job final", lambda: store.get(job_id).status in FINAL_JOB, bound_s)
    assert store.get(job_id).status == "COMPLETED", time.monotonic() - killed_at
    freed = [e for e in _events(stack, "reconcile.repaired", job_id) if "lock freed" in str(e.get("detail"))]
    assert freed, _events(stack, "reconcile.repaired", job_id)


def test_redis_lost_mid_assembly_never_starts_a_second_assembly_beside_the_live_one(stack: Stack) -> None:
    flag, held = stack.tmp / "hold-assembly", stack.tmp / "held"
    stack.env.update(
        {
            "CLIPLINE_RECONCILE_AFTER_S": "1",
            "CLIPLINE_RECONCILE_INTERVAL_S": "0.5",
            "CLIPLINE_FFMPEG": held_assembly_ffmpeg(stack, flag, held),
        }
    )
    init_db(stack)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    r = redis.Redis.from_url(stack.env["CLIPLINE_REDIS_URL"])
    flag.touch()
    stack.start_workers("--stage", "all", "--concurrency", "2", name="all")
    stack.start_workers("--stage", "assemble", name="assemble")  # a second assembler, as operators scale
    job_id = new_job_id("redis-asm")
    submit(stack, small_request(stack, job_id, lines=3, audio=False))
    wait_for("the assembler's concat held", lambda: len(holders(held)) == 1, timeout=90)
    time.sleep(1.5)  # the job's record is now older than the reconciler's stale time
    # When Redis restarts with its state lost (lock, heartbeat, outcomes), again and again for 6 s: the
    # heartbeat comes back within 3.3 s each time, sweeps run every 0.5 s in between
    for _ in range(10):
        r.flushdb()
        time.sleep(0.6)
    # Then no second assembly started beside the live one (it used to, at the first flush)
    assert len(holders(held)) == 1
    holders(held)[0].unlink()
    flag.unlink()
    wait_for("the job final", lambda: store.get(job_id).status in FINAL_JOB, timeout=60)
    job = store.get(job_id)
    report = json.loads((stack.tmp / "output" / job_id / "report.json").read_text())
    assert (job.status, report["status"]) == ("COMPLETED", "COMPLETED")
    assert len(_events(stack, "assemble.started", job_id)) == 1


def test_a_retry_right_after_a_cancel_mid_assembly_is_rendered_by_its_own_assembly(stack: Stack) -> None:
    flag, held = stack.tmp / "hold-assembly", stack.tmp / "held"
    stack.env.update(
        {
            "CLIPLINE_RECONCILE_AFTER_S": "300",  # the reconciler stays out of it
            "CLIPLINE_FFMPEG": held_assembly_ffmpeg(stack, flag, held),
        }
    )
    init_db(stack)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    flag.touch()
    stack.start_workers("--stage", "all", "--concurrency", "2", name="all")
    job_id = new_job_id("cancel-retry")
    submit(stack, small_request(stack, job_id, lines=3, audio=False))
    wait_for("attempt 1's assembly running (its concat held)", lambda: len(holders(held)) == 1, timeout=90)
    # When the operator cancels and at once retries, then attempt 1's assembler goes on
    settings = load_settings(stack.env)
    ctx = Context(settings)
    jobs.cancel(ctx, job_id)
    jobs.retry(ctx, job_id, Sender(settings).enqueue_plan)
    assert store.get(job_id).attempts == 2
    flag.unlink()  # attempt 2's assembly is not held
    holders(held)[0].unlink()
    # Then attempt 1's assembler changes nothing of attempt 2 (it used to end it FAILED with its own
    # error), and attempt 2 is planned, cut and assembled by its own assembly
    wait_for("attempt 2 final", lambda: store.get(job_id).status in FINAL_JOB, timeout=90)
    job = store.get(job_id)
    assert (job.status, job.attempts) == ("COMPLETED", 2), job.current_error()
    started = _events(stack, "assemble.started", job_id)
    assert [e.get("attempt") for e in started] == [1, 2]
    # job.finished is logged just after the record's compare-and-set: the record can be read first
    wait_for("attempt 2's job.finished", lambda: bool(_events(stack, "job.finished", job_id)), timeout=30)
    finished = [e.get("status") for e in _events(stack, "job.finished", job_id)]
    assert finished == ["COMPLETED"]


def test_a_clip_of_a_cancelled_attempt_finishing_after_the_retry_changes_nothing_of_attempt_2(
    stack: Stack,
) -> None:
    # Given a 2-line job cut one clip at a time, whose slot 1 (v_b, inside its 2-4 s segment) is held at
    # the CDN: that segment answers 404, 5 s late
    held_b, slot_0 = "/hls/v_b/seg_00001.ts", "/hls/v_a/seg"
    stack.env.update(
        {
            "CLIPLINE_RECONCILE_AFTER_S": "300",  # the reconciler stays out of it
            "CLIPLINE_PREFETCH_SLOTS": "0",  # slot 1's own clip fetches its segment, not slot 0's worker
            "CLIPLINE_HTTP_TIMEOUT_S": "20",  # a held answer is late, not timed out
        }
    )
    init_db(stack)
    settings = load_settings(stack.env)
    ctx = Context(settings)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    # A slot whose source failed fails the job, naming it (no local copy, no placeholder): a failure of
    # attempt 1 recorded for attempt 2 would show in its outcome and in the job's error log
    for key in ("fallback_local", "fallback_placeholder"):
        ctx.live.set(key, "off")
    try:
        stack.cdn.slow_down(held_b, 5)
        stack.cdn.fail_next(held_b, 404, times=1)
        stack.start_workers("--stage", "all", "--concurrency", "1", name="all")
        job_id = new_job_id("fence")
        picks = [("v_a", 100, 1100, True), ("v_b", 2200, 3200, True)]
        submit(stack, build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=False))
        wait_for("attempt 1's clip of slot 1 held", lambda: bool(stack.cdn.held(held_b)), timeout=90)
        assert clip_events(stack, job_id, ("succeeded",)) == {0: 1}
        # When the job is cancelled and retried while that clip is in flight: attempt 2's clips wait for
        # the clip thread, and its slot 0 is held 3 s at the CDN once it runs (its slot 1 is not held)
        stack.cdn.slow_down(held_b, 0)
        stack.cdn.slow_down(slot_0, 3)
        jobs.cancel(ctx, job_id)
        jobs.retry(ctx, job_id, Sender(settings).enqueue_plan)
        assert store.get(job_id).attempts == 2
        # Then attempt 1's clip, finishing with its 404 while attempt 2 runs, is dropped: it neither
        # sends slot 1 to the fallback stage (which failed the slot for attempt 2) nor counts for it
        wait_for("attempt 2 final", lambda: store.get(job_id).status in FINAL_JOB, timeout=90)
        job = store.get(job_id)
        assert (job.status, job.attempts) == ("COMPLETED", 2), job.current_error()
        wait_for("attempt 1's clip superseded", lambda: bool(_superseded_clips(stack, job_id)), timeout=30)
        superseded = _superseded_clips(stack, job_id)
        assert [(e.get("index"), e.get("attempt"), e.get("job_attempt")) for e in superseded] == [(1, 1, 2)]
        # And attempt 2's report, records and error log show its own outcome of the slot only
        report = json.loads((stack.tmp / "output" / job_id / "report.json").read_text())
        assert [(s["index"], s["outcome"]) for s in report["slots"]] == [(0, "ok"), (1, "ok")]
        assert report["slots"][1]["last_error"] is None, report["slots"][1]
        stats = (job.metrics or {})["render"]["clip_stats"]
        assert (stats["succeeded"], stats["failed"], stats["placeholder"]) == (2, 0, 0)
        assert "clip 1" not in (job.error_log or ""), job.error_log
        clips = [e for e in stack.events("twelvelabs.video_clip") if e.get("job_id") == job_id]
        ended = [e.get("clip_status") for e in clips]
        assert ended.count("failed") == 0 and ended.count("succeeded") == 3  # attempt 1's slot 0; attempt 2
        assert [e.get("attempt") for e in _events(stack, "assemble.started", job_id)] == [2]
    finally:
        for key in ("fallback_local", "fallback_placeholder"):
            ctx.live.unset(key)


def _superseded_clips(stack: Stack, job_id: str) -> list[dict[str, object]]:
    return _events(stack, "clip.superseded", job_id)
