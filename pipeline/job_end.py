"""A job's end, counted and logged once by whoever ended it: the assembler, a cancel, the reconciler."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from .context import Context
from .models import JobStatus

log = structlog.get_logger("clipline.job")


def finished(
    ctx: Context, job_id: str, status: JobStatus, created_at: datetime | None = None, **fields: object
) -> None:
    """``clipline_jobs_total{status}`` and the job duration (through the process's observer), and one
    ``job.finished`` line. Called by the one writer whose compare-and-set ended the job."""
    if created_at is None:
        created_at = ctx.store.get(job_id).created_at
    start = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    duration_s = (datetime.now(UTC) - start).total_seconds()
    ctx.observer.job_finished(status.value, duration_s)
    log.info("job.finished", job_id=job_id, status=status.value, duration_s=round(duration_s, 3), **fields)
