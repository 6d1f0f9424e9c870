"""Service functions behind the CLI and the HTTP API: submit, cancel, retry, describe a job."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from . import clip_objects, job_end, keys, logs, results, webhooks
from .clip_stats import ClipCounts, ClipStats
from .context import Context
from .errors import JobFinished, JobNotRetryable
from .models import ClipOutcome, JobStatus
from .planning import validate
from .records import Attempt, Job, JobDetail, RetriedJob
from .store import INVALID_PREFIX, JobAttempt, RenderJob
from .tables import ATTEMPT_MARK

log = structlog.get_logger("clipline.jobs")

Enqueue = Callable[[dict[str, Any]], None]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


@dataclass(frozen=True)
class Submitted:
    job: RenderJob
    created: bool


def submit(ctx: Context, raw: Any, enqueue_plan: Enqueue) -> Submitted:
    """Validate, record (idempotent on job_id) and enqueue planning.

    A job still PENDING is enqueued again: planning is idempotent, and this
    heals a submit that crashed between recording and enqueueing.
    Raises RequestInvalid or JobConflict.
    """
    request = validate(ctx, raw)
    job, created = ctx.store.create_or_get(request)
    if JobStatus(job.status) == JobStatus.PENDING:
        enqueue_plan(request.model_dump(mode="json"))
    return Submitted(job, created)


def cancel(ctx: Context, job_id: str) -> RenderJob:
    """Cancel a job that has not ended: no further clip starts, running ffmpeg is stopped, no assembly runs.

    Workers poll the cancelled set and kill the job's processes; the job's
    temporary files are removed here. Raises JobNotFound or JobFinished.
    """
    job = ctx.store.get(job_id)
    if JobStatus(job.status).is_final:
        raise JobFinished(f"job {job_id} already ended ({job.status}); nothing to cancel")
    # The workers learn of it first: with Redis out of reach nothing is recorded and the same cancel can
    # be run again (recorded first, a cancel that then failed on Redis left the job's ffmpeg running, and
    # run again it answered "already ended").
    ctx.redis.sadd(keys.cancelled(), job_id)
    ctx.redis.expire(keys.cancelled(), keys.JOB_KEY_TTL_S)
    if not ctx.store.advance(job_id, status=JobStatus.CANCELLED, error="cancelled on request"):
        now = ctx.store.get(job_id).status
        if now != JobStatus.CANCELLED.value:  # it ended otherwise meanwhile (another cancel keeps its mark)
            ctx.redis.srem(keys.cancelled(), job_id)
        raise JobFinished(f"job {job_id} already ended ({now}); nothing to cancel")
    with logs.bind_job(job_id, job.trace_id):  # job.finished carries the job's trace_id, as the assembler's
        job_end.finished(ctx, job_id, JobStatus.CANCELLED, job.created_at)
    clip_objects.remove_job(ctx, job_id)
    webhooks.notify(ctx, job_id)
    return ctx.store.get(job_id)


#: A retry of these re-renders every slot; of COMPLETED_WITH_GAPS, only the slots without their footage.
RETRY_WHOLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class Retried:
    job: RenderJob
    slots: list[int]  # the slots this attempt renders again; the others reuse their clip


def retry(ctx: Context, job_id: str, enqueue_plan: Enqueue) -> Retried:
    """Start the job's next attempt (spec 001).

    COMPLETED_WITH_GAPS: only slots whose outcome was local, placeholder or
    failed are cut again; ok clips kept from the last attempt are reused.
    FAILED or CANCELLED: every slot. The last attempt's report.json and
    final.mp4 are kept as ``report.attempt-N.json`` / ``final.attempt-N.mp4``
    and listed in the job's history. Raises JobNotFound or JobNotRetryable.

    The attempt is recorded (PENDING) before its plan is sent. When sending
    fails (broker down), the same retry again re-sends the plan of that
    attempt, while it is still PENDING, without starting another: planning
    holds a lock per job and skips a job already past planning, so a plan
    sent twice (two retries racing, a redelivery) renders the attempt once.
    """
    job = ctx.store.get(job_id)
    status = JobStatus(job.status)
    if status == JobStatus.PENDING and job.attempts > 1:  # a retry's attempt whose plan may not be sent
        enqueue_plan(job.request)
        total = len(job.render_request().lines)
        return Retried(job, _slots_without_footage(ctx, job_id, total))
    if not status.is_final:
        raise JobNotRetryable(f"job {job_id} is still {status.value}; wait for it to end, or cancel it first")
    if status == JobStatus.COMPLETED:
        raise JobNotRetryable(f"job {job_id} is COMPLETED with every slot's footage; nothing to retry")
    if job.request_hash.startswith(INVALID_PREFIX):
        raise JobNotRetryable(
            f"job {job_id} was refused ({job.current_error()}); send a corrected request with the same job_id"
        )
    total = len(job.render_request().lines)
    redo = list(range(total)) if status in RETRY_WHOLE else _slots_without_footage(ctx, job_id, total)
    attempt = job.attempts
    kept = {name: results.attempt_uri(ctx, job_id, name, attempt) for name in ("report.json", "final.mp4")}
    history = JobAttempt(
        job_id=job_id,
        attempt=attempt,
        status=status.value,
        finished_at=job.finished_at,
        report_path=str(kept["report.json"]) if job.report_path else None,
        output_path=str(kept["final.mp4"]) if job.output_path else None,
        clip_stats=(job.metrics or {}).get("render", {}).get("clip_stats"),
        error=job.current_error(),
    )
    what = "every slot" if len(redo) == total else f"slots {redo}"
    note = f"{ATTEMPT_MARK} {attempt + 1} (retry) renders {what}; attempt {attempt} ended {status.value}"
    # Redis first: when it is out of reach nothing is recorded and the same retry can simply be run
    # again. Done after the attempt was recorded, a failure here left the next attempt in the cancelled
    # set (its ffmpeg killed each second) with the last attempt's outcomes counted, and running the retry
    # again (the PENDING branch above) only re-sent the plan.
    ctx.completion.forget(job_id)
    ctx.redis.srem(keys.cancelled(), job_id)
    if not ctx.store.restart(job_id, from_status=status, history=history, note=note):
        raise JobNotRetryable(f"job {job_id} changed state meanwhile (another retry?); look at it again")
    results.keep_attempt(ctx, job_id, attempt)
    for index in redo:
        clip_objects.forget(ctx, job_id, index)
    enqueue_plan(job.request)
    return Retried(ctx.store.get(job_id), redo)


def _slots_without_footage(ctx: Context, job_id: str, total: int) -> list[int]:
    """Slots whose kept clip is not an ok cut from the source (or is not there at all)."""
    redo = []
    for index in range(total):
        record = clip_objects.read_record(ctx, job_id, index)
        ok = record is not None and record.outcome == ClipOutcome.OK
        if not ok or not clip_objects.exists(ctx, job_id, index):
            redo.append(index)
    return redo


#: ``eta_s`` is given once this many clips of the job have an outcome.
ETA_AFTER_CLIPS = 3
_OUTCOMES = frozenset(o.value for o in ClipOutcome)


def describe(ctx: Context, job: RenderJob, *, now_s: float | None = None) -> Job:
    """The job's status object: the record, plus clip counts by outcome (live from Redis while it
    runs, from clip_stats once assembled) and ``eta_s``. Redis unreachable: ``clips`` is None."""
    stats = ClipStats.from_metrics(job.metrics)
    status = JobStatus(job.status)
    clips, eta_s = (stats.counts, None) if stats else _live(ctx, job, status, now_s)
    request = job.request if isinstance(job.request, dict) else {}
    metadata = request.get("metadata")
    urls = results.urls(ctx, job)
    return Job(
        job_id=job.id,
        mix_request_id=job.mix_request_id,
        trace_id=job.trace_id,
        status=status,
        progress=job.progress,
        attempt=job.attempts,
        output_path=job.output_path,
        report_path=job.report_path,
        quality=job.quality,
        output_url=urls.output_url,
        report_url=urls.report_url,
        poster_url=urls.poster_url,
        error=job.current_error(),
        clips=clips,
        eta_s=eta_s,
        clip_stats=stats,
        metadata=metadata if isinstance(metadata, dict) else None,
        created_at=job.created_at,
        updated_at=job.updated_at or job.created_at,
        finished_at=job.finished_at,
    )


def detail(ctx: Context, job: RenderJob) -> JobDetail:
    """The status object with the job's earlier attempts."""
    attempts = [
        Attempt(
            attempt=a.attempt,
            status=JobStatus(a.status),
            finished_at=a.finished_at,
            report_path=a.report_path,
            output_path=a.output_path,
            clip_stats=ClipStats.from_metrics({"render": {"clip_stats": a.clip_stats}}),
            error=a.error,
        )
        for a in ctx.store.history(job.id)
    ]
    return JobDetail(**dict(describe(ctx, job)), previous_attempts=attempts)


def retried(ctx: Context, done: Retried) -> RetriedJob:
    """What ``retry`` answers: the job's detail and the slots rendered again."""
    return RetriedJob(**dict(detail(ctx, done.job)), retried_slots=done.slots)


def _live(
    ctx: Context, job: RenderJob, status: JobStatus, now_s: float | None
) -> tuple[ClipCounts | None, float | None]:
    lines = (job.request or {}).get("lines") if isinstance(job.request, dict) else None
    total = len(lines) if isinstance(lines, list) else 0
    try:
        outcomes = [o.get("outcome") for o in ctx.completion.outcomes(job.id).values()]
        planned_at = ctx.completion.planned_at(job.id) if status == JobStatus.EXTRACTING else None
    except redis.RedisError as exc:
        log.warning("status.live_counts_unavailable", job_id=job.id, error=f"{type(exc).__name__}: {exc}")
        return None, None
    counts = ClipCounts.of(total, [str(o) for o in outcomes if o in _OUTCOMES])
    eta_s = None
    if planned_at is not None and ETA_AFTER_CLIPS <= counts.done < total:
        elapsed = max(0.0, (time.time() if now_s is None else now_s) - planned_at)
        eta_s = round(elapsed / counts.done * (total - counts.done), 1)
    return counts, eta_s


def exit_code(status: JobStatus) -> int:
    return EXIT_OK if status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_GAPS) else EXIT_FAILED
