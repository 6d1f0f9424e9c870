"""The job status object (jobs.describe) on the in-memory stand-ins: live clip counts, eta_s, timestamps,
metadata; and a job recorded from a refused request: described, not retryable, replaced by a valid one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from pipeline import jobs, keys
from pipeline.context import Context
from pipeline.errors import JobNotRetryable
from pipeline.models import ClipOutcome, ClipRecord, JobStatus, parse_request
from tests.stubs import stub_context

PLANNED_AT = 1_800_000_000.0
CLIP = {"video_id": "v", "start_ms": 0, "end_ms": 900}


def request(job_id: str = "job-1", lines: int = 10, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": job_id,
        "metadata": {"tenant": "t-1"},
        "lines": [{"start_ms": i * 1000, "end_ms": (i + 1) * 1000, "clip": CLIP} for i in range(lines)],
    }
    body.update(over)
    return body


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return stub_context(tmp_path)


def running(ctx: Context, outcomes: list[str], status: JobStatus = JobStatus.EXTRACTING) -> str:
    """A job of 10 lines, planned at PLANNED_AT, with these clip outcomes recorded."""
    job, _ = ctx.store.create_or_get(parse_request(request()))
    ctx.store.advance(job.id, status=status)
    ctx.redis.set(keys.job_planned(job.id), str(PLANNED_AT))
    for i, outcome in enumerate(outcomes):
        ctx.completion.record(job.id, i, 10, ClipRecord(i, ClipOutcome(outcome)).to_json())
    return job.id


def test_a_pending_job_counts_no_clip_and_has_no_eta(ctx: Context) -> None:
    job, _ = ctx.store.create_or_get(parse_request(request()))
    seen = jobs.describe(ctx, job)
    assert seen.clips is not None and (seen.clips.total, seen.clips.done) == (10, 0)
    assert seen.eta_s is None and seen.clip_stats is None and seen.metadata == {"tenant": "t-1"}
    body = json.loads(seen.model_dump_json())
    for stamp in (body["created_at"], body["updated_at"]):  # SQLite hands back naive datetimes
        assert stamp.endswith("Z")
    assert body["finished_at"] is None and body["schema_version"] == 1


def test_live_counts_come_from_redis_and_eta_from_the_rate_so_far(ctx: Context) -> None:
    job_id = running(ctx, ["ok", "ok", "local", "placeholder"])
    seen = jobs.describe(ctx, ctx.store.get(job_id), now_s=PLANNED_AT + 8)
    assert seen.clips is not None and seen.clips.model_dump() == {
        "total": 10,
        "done": 4,
        "succeeded": 2,
        "fallback_local": 1,
        "placeholder": 1,
        "failed": 0,
    }
    # 4 clips in 8 s: the 6 left take 12 s more
    assert seen.eta_s == 12.0


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        (["ok", "ok"], JobStatus.EXTRACTING),  # not yet a few clips done
        (["ok"] * 10, JobStatus.EXTRACTING),  # every clip done: nothing left to estimate
        (["ok"] * 5, JobStatus.ASSEMBLING),  # only while extracting
        (["ok"] * 5, JobStatus.PLANNING),
    ],
)
def test_no_eta_outside_its_window(ctx: Context, outcomes: list[str], status: JobStatus) -> None:
    job_id = running(ctx, outcomes, status)
    assert jobs.describe(ctx, ctx.store.get(job_id), now_s=PLANNED_AT + 8).eta_s is None


def test_a_planned_marker_of_the_previous_release_gives_no_eta(ctx: Context) -> None:
    job_id = running(ctx, ["ok"] * 5)
    ctx.redis.set(keys.job_planned(job_id), "1")
    assert jobs.describe(ctx, ctx.store.get(job_id), now_s=PLANNED_AT + 8).eta_s is None


def test_an_assembled_job_counts_from_its_clip_stats(ctx: Context) -> None:
    job_id = running(ctx, ["ok"] * 3)
    stats = {"total": 10, "succeeded": 9, "fallback_local": 0, "placeholder": 1, "failed": 0, "retries": 2}
    ctx.store.advance(job_id, status=JobStatus.COMPLETED_WITH_GAPS, metrics={"render": {"clip_stats": stats}})
    seen = jobs.describe(ctx, ctx.store.get(job_id))
    assert seen.clips is not None
    assert (seen.clips.done, seen.clips.succeeded, seen.clips.placeholder) == (10, 9, 1)
    assert seen.clip_stats is not None and seen.clip_stats.retries == 2
    assert seen.finished_at is not None and seen.finished_at.tzinfo is not None


def test_redis_out_of_reach_leaves_the_counts_unknown_not_the_status(ctx: Context) -> None:
    job_id = running(ctx, ["ok"] * 5)
    down = Context(ctx.settings)  # the same database; a Redis where nothing listens
    down.redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    seen = jobs.describe(down, down.store.get(job_id))
    assert seen.status == JobStatus.EXTRACTING and seen.clips is None and seen.eta_s is None


def test_a_refused_request_is_described_not_retried_and_replaced_by_a_valid_one(ctx: Context) -> None:
    raw = request("job-r", lines=2, colour="red")
    assert ctx.store.record_invalid("job-r", raw, "request invalid: colour: Extra inputs are not permitted")
    assert not ctx.store.record_invalid("job-r", raw, "again")  # recorded once; never overwritten
    refused = ctx.store.get("job-r")
    seen = jobs.describe(ctx, refused)
    assert seen.status == JobStatus.FAILED and "colour" in (seen.error or "") and seen.finished_at is not None
    with pytest.raises(JobNotRetryable, match="send a corrected request with the same job_id"):
        jobs.retry(ctx, "job-r", lambda _: None)
    # A valid request under the same job_id takes its place as attempt 2; the refusal is kept as attempt 1
    job, created = ctx.store.create_or_get(parse_request(request("job-r", lines=2)))
    assert created and job.status == JobStatus.PENDING.value and job.attempts == 2
    detail = jobs.detail(ctx, job)
    assert [(a.attempt, a.status) for a in detail.previous_attempts] == [(1, JobStatus.FAILED)]
    assert detail.finished_at is None and detail.error is None
    # ... and the same valid request again is that job, not a conflict
    assert ctx.store.create_or_get(parse_request(request("job-r", lines=2)))[1] is False


def test_a_valid_job_is_never_touched_by_a_refused_request_with_its_id(ctx: Context) -> None:
    job, _ = ctx.store.create_or_get(parse_request(request("job-v")))
    assert not ctx.store.record_invalid("job-v", {"job_id": "job-v"}, "request invalid: lines: missing")
    after = ctx.store.get("job-v")
    assert after.status == JobStatus.PENDING.value and after.request_hash == job.request_hash


def test_a_retry_cut_short_by_redis_and_run_again_starts_its_attempt_clean(tmp_path: Path) -> None:
    """Found by the chaos soak (bench/chaos.py): ``clipline retry`` of a CANCELLED job while Redis was
    out of reach recorded attempt 2 (PENDING) and then failed on Redis; run again, it only re-sent the
    plan. The job stayed in the cancelled set (every worker kills its ffmpeg each second) and its
    attempt-1 outcomes stayed in the completion set."""
    server = fakeredis.FakeServer()
    ctx = stub_context(tmp_path, server=server)
    # Given a job cancelled with 3 of its 10 slots done
    job_id = running(ctx, ["ok", "ok", "ok"])
    jobs.cancel(ctx, job_id)
    assert ctx.redis.sismember(keys.cancelled(), job_id)
    sent: list[Any] = []
    # When its retry meets Redis out of reach, and is run again once Redis is back
    server.connected = False
    with pytest.raises(redis.ConnectionError):
        jobs.retry(ctx, job_id, sent.append)
    server.connected = True
    again = jobs.retry(ctx, job_id, sent.append)
    # Then the attempt runs clean: not cancelled, no outcome of attempt 1 counted, its plan sent once
    assert again.job.attempts == 2 and again.job.status == JobStatus.PENDING.value
    assert not ctx.redis.sismember(keys.cancelled(), job_id)
    assert ctx.completion.done_count(job_id) == 0
    assert len(sent) == 1


def test_a_cancel_that_meets_redis_out_of_reach_changes_nothing_and_can_be_run_again(tmp_path: Path) -> None:
    """Found while reducing the retry above: ``jobs.cancel`` recorded CANCELLED, then failed on Redis
    before adding the job to the cancelled set; run again it answered "already ended", so no worker
    ever stopped the job's running ffmpeg."""
    server = fakeredis.FakeServer()
    ctx = stub_context(tmp_path, server=server)
    job_id = running(ctx, ["ok", "ok"])
    # When the cancel meets Redis out of reach
    server.connected = False
    with pytest.raises(redis.ConnectionError):
        jobs.cancel(ctx, job_id)
    # Then the job is still running, as the error says, and the same cancel works once Redis is back
    assert ctx.store.get(job_id).status == JobStatus.EXTRACTING.value
    server.connected = True
    assert jobs.cancel(ctx, job_id).status == JobStatus.CANCELLED.value
    assert ctx.redis.sismember(keys.cancelled(), job_id)
