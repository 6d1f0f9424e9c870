"""The fairness policy (pipeline.priority): fewer remaining clips first, ageing, bounded overtaking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import priority
from pipeline.models import JobStatus, parse_request
from pipeline.priority import AGE_STEP_S, MAX_PRIORITY, OVERTAKE_S, clip_priority, size_level
from tests.stubs import stub_context

CLIP = {"video_id": "v", "start_ms": 0, "end_ms": 900}


def test_fewer_remaining_clips_rank_higher() -> None:
    sizes = [1, 2, 4, 5, 8, 16, 32, 70, 500]
    levels = [size_level(n) for n in sizes]
    assert levels == sorted(levels, reverse=True)
    assert size_level(5) > size_level(70)
    assert size_level(1) == priority.SIZE_TOP and size_level(70) == 0


def test_a_small_job_sent_behind_a_big_one_outranks_it() -> None:
    # Given a 70-line job and a 5-line job submitted a second later
    big = clip_priority(70, 0.0)
    small = clip_priority(5, 1.0)
    # Then the small job's clips are delivered first
    assert small > big


def test_ageing_lifts_a_job_one_level_per_step_up_to_the_maximum() -> None:
    assert clip_priority(70, AGE_STEP_S - 1) == clip_priority(70, 0)
    assert clip_priority(70, AGE_STEP_S) == clip_priority(70, 0) + 1
    # an old big job (the gap clips of a retry) outranks a fresh 5-line job
    assert clip_priority(70, 10 * AGE_STEP_S) > clip_priority(5, 0)
    assert clip_priority(1, 10**6) == MAX_PRIORITY
    assert all(0 <= clip_priority(n, a) <= MAX_PRIORITY for n in (0, 1, 9, 10**4) for a in (-5.0, 0.0, 1e9))


def test_a_new_job_never_outranks_an_overdue_one() -> None:
    # Given a big job extracting for longer than OVERTAKE_S, its clips waiting at level 0
    # When a 5-line job is sent
    # Then its clips queue at level 0: first in, first out behind the big job's
    assert clip_priority(5, 0.0, overdue_levels=[0]) == 0
    assert clip_priority(5, 0.0, overdue_levels=[size_level(10), size_level(70)]) == 0
    assert clip_priority(5, 0.0, overdue_levels=[MAX_PRIORITY]) == clip_priority(5, 0.0)


def _job(ctx: Any, job_id: str, lines: int, created: datetime, status: JobStatus) -> None:
    body = {
        "job_id": job_id,
        "lines": [{"start_ms": i * 1000, "end_ms": (i + 1) * 1000, "clip": CLIP} for i in range(lines)],
    }
    job, _ = ctx.store.create_or_get(parse_request(body))
    ctx.store.advance(job.id, status=status)
    with ctx.store.session() as s, s.begin():
        row = s.get(type(job), job.id)
        row.created_at = created


def test_job_priority_reads_age_and_overdue_jobs_from_the_store(tmp_path: Path) -> None:
    ctx = stub_context(tmp_path)
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    # Given a 70-line job extracting for 30 s and a 5-line job just submitted
    _job(ctx, "big", 70, now - timedelta(seconds=30), JobStatus.EXTRACTING)
    _job(ctx, "small", 5, now, JobStatus.PLANNING)
    # Then the small job overtakes the big one
    assert priority.job_priority(ctx.store, "small", 5, now=now) == clip_priority(5)
    # When the big job has been extracting for longer than OVERTAKE_S, a new job does not overtake it
    later = now + timedelta(seconds=OVERTAKE_S)
    _job(ctx, "small-2", 5, later, JobStatus.PLANNING)
    assert priority.job_priority(ctx.store, "small-2", 5, now=later) == size_level(70)
    # and the old job's own re-sent clips are aged, not capped by itself
    assert priority.job_priority(ctx.store, "big", 70, now=later) == clip_priority(70, OVERTAKE_S + 30)
