"""Service functions behind the CLI and the HTTP API: submit a request, describe a job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import files, keys
from .context import Context
from .errors import JobFinished
from .models import JobStatus
from .planning import validate
from .store import RenderJob

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
    if JobStatus(job.status).is_final or not ctx.store.advance(
        job_id, status=JobStatus.CANCELLED, error="cancelled on request"
    ):
        raise JobFinished(f"job {job_id} already ended ({ctx.store.get(job_id).status}); nothing to cancel")
    ctx.redis.sadd(keys.cancelled(), job_id)
    ctx.redis.expire(keys.cancelled(), keys.JOB_KEY_TTL_S)
    files.remove_tree(files.job_work_dir(ctx.settings, job_id))
    return ctx.store.get(job_id)


def status_object(job: RenderJob) -> dict[str, Any]:
    """The JSON object of ``submit --json`` and ``status --json`` (DESIGN.md)."""
    error = job.error_log.strip().splitlines()[-1] if job.error_log and job.error_log.strip() else None
    clip_stats = (job.metrics or {}).get("render", {}).get("clip_stats")
    return {
        "job_id": job.id,
        "mix_request_id": job.mix_request_id,
        "trace_id": job.trace_id,
        "status": job.status,
        "progress": job.progress,
        "output_path": job.output_path,
        "report_path": job.report_path,
        "error": error,
        "clip_stats": clip_stats,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def exit_code(status: JobStatus) -> int:
    return EXIT_OK if status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_GAPS) else EXIT_FAILED
