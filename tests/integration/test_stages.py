"""Stages called in-process against real Redis, SQLite, ffmpeg and the loopback CDN."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline import assembly, clipstage, planning
from pipeline.context import Context
from pipeline.models import JobStatus
from pipeline.settings import load_settings

from .conftest import Stack, build_request, new_job_id

pytestmark = pytest.mark.integration


def make_ctx(stack: Stack, **extra: str) -> Context:
    env = {k: v for k, v in stack.env.items() if k.startswith(("CLIPLINE_", "TWELVELABS_", "RENDER_"))}
    env.update(extra)
    return Context(load_settings(env))


def test_ffmpeg_vanishing_mid_job_fails_the_job_clearly_and_releases_slots(stack: Stack) -> None:
    # Given ffmpeg reached through a link that disappears after the first clip
    bindir = stack.tmp / "bin"
    bindir.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        os.symlink(shutil.which(tool) or tool, bindir / tool)
    ctx = make_ctx(stack, CLIPLINE_FFMPEG=str(bindir / "ffmpeg"))
    job_id = new_job_id("noff")
    request = build_request(
        job_id,
        stack.cdn,
        [("v_a", 1000 * i, 1000 * i + 900, True) for i in range(3)],
        line_ms=lambda i: 1000,
        audio=False,
    )
    plan = planning.plan(ctx, request)
    assert plan.fan_out and plan.total == 3
    first = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=3)
    assert isinstance(first, clipstage.Done) and first.record.outcome == "ok"
    (bindir / "ffmpeg").unlink()

    # When the other clips run
    steps = [clipstage.run_clip(ctx, job_id, i, attempt=1, max_attempts=3) for i in (1, 2)]

    # Then they are failed (no fallback can help), the last one fires assembly, and the job FAILs clearly
    assert all(isinstance(s, clipstage.Done) and s.record.outcome == "failed" for s in steps)
    assert [s.fire for s in steps if isinstance(s, clipstage.Done)] == [False, True]
    assert ctx.redis.get(f"clipline:job:{job_id}:inflight") in (b"0", None)  # slots released
    assert assembly.assemble(ctx, job_id) == JobStatus.FAILED
    job = ctx.store.get(job_id)
    assert job.status == "FAILED" and "ffmpeg is missing" in job.error_log
    assert not (Path(ctx.settings.output_dir) / job_id / "final.mp4").exists()
    assert (Path(ctx.settings.output_dir) / job_id / "report.json").exists()
    # A second assembly of a finished job does nothing
    assert assembly.assemble(ctx, job_id) is None


def test_gone_source_goes_straight_to_fallback_and_plan_is_idempotent(stack: Stack) -> None:
    ctx = make_ctx(stack)
    job_id = new_job_id("gone")
    request = build_request(
        job_id,
        stack.cdn,
        [("v_gone", 0, 1000, False), ("v_local", 0, 1000, False)],
        line_ms=lambda i: 1000,
        audio=False,
    )
    assert planning.plan(ctx, request).fan_out
    assert not planning.plan(ctx, request).fan_out  # a redelivered plan message does not fan out twice
    step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=3)
    assert isinstance(step, clipstage.Fallback) and "SourceNotFound" in step.reason
    done = clipstage.run_fallback(ctx, job_id, 0, step.reason)
    assert isinstance(done, clipstage.Done) and done.record.outcome == "placeholder"
    assert "no local copy of v_gone" in (done.record.reason or "")
    step = clipstage.run_clip(ctx, job_id, 1, attempt=1, max_attempts=3)
    assert isinstance(step, clipstage.Fallback)
    done = clipstage.run_fallback(ctx, job_id, 1, step.reason)
    assert isinstance(done, clipstage.Done) and done.record.outcome == "local" and done.fire


def test_two_assemblies_racing_count_the_job_once(stack: Stack) -> None:
    from pipeline.assembly import _assemble
    from pipeline.observe import Observer

    finished: list[str] = []

    class Recording(Observer):
        def job_finished(self, status: str, duration_s: float) -> None:
            finished.append(status)

    ctx = make_ctx(stack)
    ctx.observer = Recording()
    job_id = new_job_id("race")
    request = build_request(job_id, stack.cdn, [("v_b", 0, 900, False)], line_ms=lambda i: 1000, audio=False)
    planning.plan(ctx, request)
    assert isinstance(clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=3), clipstage.Done)
    view, created = ctx.view(job_id), ctx.store.get(job_id).created_at
    ctx_keep = make_ctx(stack, CLIPLINE_KEEP_WORK="1")
    ctx_keep.observer = ctx.observer
    # Given the lock was lost (Redis restarted), so both deliveries got past it
    assert _assemble(ctx_keep, view, created, attempt=1) == JobStatus.COMPLETED
    assert _assemble(ctx_keep, view, created, attempt=1) == JobStatus.COMPLETED
    # Then the job is final once and counted once
    assert finished == ["COMPLETED"]
