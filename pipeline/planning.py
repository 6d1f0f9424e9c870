"""The plan stage: validate, record the job, resolve each distinct video once, say what to fan out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from . import audio, files, keys
from .context import Context
from .models import JobStatus, RenderRequest, parse_request
from .stages import Stage

log = structlog.get_logger("clipline.plan")

PLAN_LOCK_S = 600


@dataclass(frozen=True)
class Plan:
    request: RenderRequest
    fan_out: bool  # False: another delivery planned (or is planning) this job
    reason: str = ""
    attempt: int | None = None  # the job's attempt being planned: its clip messages are for it

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def total(self) -> int:
        return len(self.request.lines)


def validate(ctx: Context, raw: Any) -> RenderRequest:
    s = ctx.settings
    return parse_request(
        raw, max_lines=s.max_lines, max_time_ms=s.max_time_ms, allowed_hosts=s.allowed_host_set
    )


def job_id_for_message(message_id: str) -> str:
    """The job id of a plan message that carries none: derived from the message, so a redelivery of the
    same message (same message id) plans the same job instead of a second one."""
    return f"msg-{message_id}"


def with_job_id(raw: Any, message_id: str | None) -> Any:
    """``raw`` with ``job_id`` filled in from ``message_id`` when it has none (null or absent)."""
    if message_id and isinstance(raw, dict) and raw.get("job_id") is None:
        return {**raw, "job_id": job_id_for_message(message_id)}
    return raw


def plan(ctx: Context, raw: Any, *, message_id: str | None = None) -> Plan:
    """Raises RequestInvalid or JobConflict for a message that can never succeed.

    ``message_id`` (the broker's id of the delivery) names a request without a ``job_id``: every
    delivery of that message is the same job.
    """
    request = validate(ctx, with_job_id(raw, message_id))
    job, _ = ctx.store.create_or_get(request)
    status = JobStatus(job.status)
    resumed = status == JobStatus.EXTRACTING and ctx.completion.fan_out_cut_short(request.job_id)
    if status not in (JobStatus.PENDING, JobStatus.PLANNING) and not resumed:
        return Plan(request, False, f"job is already {status.value}")
    lock = keys.job_lock(request.job_id, Stage.PLAN)
    if not ctx.redis.set(lock, "1", nx=True, ex=PLAN_LOCK_S):
        return Plan(request, False, "another delivery is planning this job")
    if resumed:  # the clips already sent run on (the first moved the job on): the rest are sent now
        log.info("plan.resumed", reason="the fan-out was cut short; the clips without an outcome are sent")
        return Plan(request, True, attempt=job.attempts)
    try:
        ctx.completion.mark_planned(request.job_id)  # before any clip message exists
        ctx.store.advance(
            request.job_id,
            status=JobStatus.PLANNING,
            progress=1,
            only_from=frozenset({JobStatus.PENDING, JobStatus.PLANNING}),
        )
        files.job_work_dir(ctx.settings, request.job_id).mkdir(parents=True, exist_ok=True)
    except BaseException:
        release(ctx, request.job_id)
        raise
    return Plan(request, True, attempt=job.attempts)


def release(ctx: Context, job_id: str) -> None:
    """Free the plan lock: a plan that failed half-way leaves the job to the next delivery (the broker's
    retry or the reconciler) at once, not after ``PLAN_LOCK_S``."""
    ctx.redis.delete(keys.job_lock(job_id, Stage.PLAN))


def fanned_out(ctx: Context, plan: Plan) -> None:
    """All clip messages are sent: resolve each distinct video once, then the job is extracting.

    Resolution runs after the fan-out so the first clips start at once; a clip
    that needs a video still being resolved waits for that one resolution
    (a per-video lock), it never asks again.
    """
    request = plan.request
    resolved = ctx.resolver.prewarm(
        request.job_id, request.distinct_videos(), request.output.rendition_height
    )
    for video_id, result in resolved.items():
        if result != "ok":
            log.warning("plan.source_unresolved", video_id=video_id, error=result)
    unresolved = sum(1 for r in resolved.values() if r != "ok")
    log.info("plan.ready", lines=len(request.lines), videos=len(resolved), unresolved=unresolved)
    ctx.store.advance(
        plan.job_id, status=JobStatus.EXTRACTING, progress=5, only_from=frozenset({JobStatus.PLANNING})
    )
    release(ctx, plan.job_id)
    if request.audio is not None:  # while the clips are cut, on a thread of its own (a slow song holds that)
        audio.prepare_in_background(ctx, plan.job_id)
