"""The reconciler repairs jobs whose Redis state was lost or whose messages were dropped."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from clipline.dev.samples import count_frames
from pipeline import assembly, clipstage, planning, priority, reconcile
from pipeline.models import JobStatus, parse_request

from .conftest import Stack, build_request, new_job_id
from .redisdb import wipe
from .test_stages import make_ctx

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.priorities: list[int | None] = []
        self.attempts: list[int | None] = []

    def __call__(
        self, stage: str, *args: Any, priority: int | None = None, job_attempt: int | None = None
    ) -> None:
        self.sent.append((stage, *args))
        self.priorities.append(priority)
        self.attempts.append(job_attempt)


def _four_line_job(stack: Stack, prefix: str) -> tuple[Any, str, dict[str, Any]]:
    ctx = make_ctx(stack)
    job_id = new_job_id(prefix)
    request = build_request(
        job_id,
        stack.cdn,
        [("v_a", 1000 * i, 1000 * i + 900, True) for i in range(4)],
        line_ms=lambda i: 1000,
        audio=False,
    )
    planning.fanned_out(ctx, planning.plan(ctx, request))
    return ctx, job_id, request


def test_lost_outcomes_are_restored_from_disk_and_lost_clips_re_sent(stack: Stack) -> None:
    ctx, job_id, request = _four_line_job(stack, "rec")
    for i in (0, 1):
        assert isinstance(clipstage.run_clip(ctx, job_id, i, attempt=1, max_attempts=3), clipstage.Done)
    # Given Redis lost the job's state, and the messages of clips 2 and 3 were dropped
    ctx.completion.forget(job_id)

    # When a sweep runs
    send = Recorder()
    repairs = reconcile.sweep(ctx, send, stale_s=0)

    # Then the outcomes on disk are counted again and only the lost clips are re-sent
    assert [r.action for r in repairs] == ["outcomes restored from disk", "clips re-sent"]
    assert send.sent == [("clip", job_id, 2, request["trace_id"]), ("clip", job_id, 3, request["trace_id"])]
    # at the priority the fan-out gives a job with that many clips left (not 0, the lowest)
    assert send.priorities == [priority.job_priority(ctx.store, job_id, 2)] * 2
    assert priority.job_priority(ctx.store, job_id, 2) > 0
    assert send.attempts == [1, 1]  # for the attempt swept: a retry meanwhile would drop them (fencing)
    assert ctx.completion.done_count(job_id) == 2
    assert isinstance(clipstage.run_clip(ctx, job_id, 2, attempt=1, max_attempts=3), clipstage.Done)
    last = clipstage.run_clip(ctx, job_id, 3, attempt=1, max_attempts=3)
    assert isinstance(last, clipstage.Done) and last.fire  # the set completes once, as usual
    assert assembly.assemble(ctx, job_id) == JobStatus.COMPLETED
    assert reconcile.sweep(ctx, Recorder(), stale_s=0) == []  # a finished job needs nothing


def _logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Structured lines logged in this process since ``caplog.clear()`` (through stdlib logging, which
    every configuration of ``pipeline.logs`` ends in: unlike ``structlog.testing.capture_logs``, this
    sees loggers cached under an earlier configuration by whatever test ran before in the process)."""
    return [r.msg for r in caplog.records if isinstance(r.msg, dict)]


def test_a_clip_finishing_after_redis_lost_the_job_restores_the_outcomes_at_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ctx, job_id, _ = _four_line_job(stack, "lost")
    for i in (0, 1, 2):
        assert isinstance(clipstage.run_clip(ctx, job_id, i, attempt=1, max_attempts=3), clipstage.Done)
    # Given Redis lost the job's state (restart) before its last clip finished
    ctx.completion.forget(job_id)

    # When the last clip finishes
    caplog.clear()
    last = clipstage.run_clip(ctx, job_id, 3, attempt=1, max_attempts=3)
    logs = _logged(caplog)

    # Then it records the three outcomes on disk again, so it completes the set and fires assembly
    assert isinstance(last, clipstage.Done) and last.fire and last.added
    assert ctx.completion.done_count(job_id) == 4
    assert [e["restored"] for e in logs if e["event"] == "clip.state_restored"] == [3]
    # and nothing is left for the reconciler but the assembly the clip's actor enqueues
    assert assembly.assemble(ctx, job_id) == JobStatus.COMPLETED


def test_a_job_whose_plan_message_was_lost_is_planned_again(stack: Stack) -> None:
    ctx = make_ctx(stack)
    job_id = new_job_id("lostplan")
    request = build_request(job_id, stack.cdn, [("v_a", 0, 900, True)], line_ms=lambda i: 1000, audio=False)
    ctx.store.create_or_get(parse_request(request))
    send = Recorder()
    assert reconcile.sweep(ctx, send, stale_s=60) == []  # fresh: give the real message time
    repairs = reconcile.sweep(ctx, send, stale_s=0)
    assert [r.action for r in repairs] == ["plan re-sent"] and send.sent[0][0] == "plan"
    assert send.sent[0][1]["job_id"] == job_id


def test_redis_state_lost_mid_job_the_next_clips_restore_it_without_the_sweeper(stack: Stack) -> None:
    stack.env.update({"CLIPLINE_RECONCILE_INTERVAL_S": "1", "CLIPLINE_RECONCILE_AFTER_S": "3600"})
    stack.cdn.latency_ms = 150
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("flush")
    picks = [("v_a", 600 * i, 600 * i + 900, True) for i in range(12)]
    request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=False)
    path = stack.tmp / "flush.json"
    path.write_text(json.dumps(request))
    r = redis.Redis.from_url(stack.env["CLIPLINE_REDIS_URL"])
    try:
        assert stack.cli("submit", str(path)).returncode == 0
        deadline = time.monotonic() + 60
        while r.hlen(f"clipline:job:{job_id}:results") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        wipe(stack.env["CLIPLINE_REDIS_URL"])  # Redis restarted: every completion record so far is gone
        done = stack.cli("status", job_id, "--watch", "--json", timeout=120)
    finally:
        stack.cdn.latency_ms = 0
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "COMPLETED", result
    assert count_frames(Path(result["output_path"])) == 12 * 30
    assert len(stack.job_finished(job_id)) == 1
    assert any(e["job_id"] == job_id for e in stack.events("clip.state_restored"))
    assert not any(e["job_id"] == job_id for e in stack.events("reconcile.repaired"))


def test_a_restored_outcome_is_logged_once_whether_or_not_its_clip_logged_it(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    from pipeline import files

    caplog.set_level(logging.INFO)

    ctx = make_ctx(stack)
    job_id = new_job_id("relog")
    request = build_request(
        job_id,
        stack.cdn,
        [("v_a", 0, 900, True), ("v_a", 1000, 1900, True)],
        line_ms=lambda i: 1000,
        audio=False,
    )
    planning.fanned_out(ctx, planning.plan(ctx, request))
    for i in (0, 1):
        assert isinstance(clipstage.run_clip(ctx, job_id, i, attempt=1, max_attempts=3), clipstage.Done)
    # Given Redis lost both outcomes; clip 1's worker had died between its sidecar and its log line
    ctx.completion.forget(job_id)
    files.clip_logged_path(ctx.settings, job_id, 1).unlink()

    def finals() -> list[str]:
        caplog.clear()
        reconcile.sweep(ctx, Recorder(), stale_s=0)
        return [e["clip_task_id"] for e in _logged(caplog) if e["event"] == "twelvelabs.video_clip"]

    # When the sweep restores them, only the outcome never logged is logged, and only once
    assert finals() == [f"{job_id}:1"]
    ctx.completion.forget(job_id)
    assert finals() == []
