"""Statistics over the job records (spec 004): what ``GET /stats`` and ``clipline stats`` show."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from .clip_stats import ClipCounts, ClipStats, percentile
from .context import Context
from .models import JobStatus
from .records import UtcDatetime, as_utc
from .stages import Stage

SUCCEEDED = (JobStatus.COMPLETED.value, JobStatus.COMPLETED_WITH_GAPS.value)


class Durations(BaseModel):
    """Seconds from submit to final status of the jobs that completed or failed in the window."""

    count: int
    avg: float | None
    p95: float | None
    max: float | None


class QueueDepth(BaseModel):
    """A stage's queues in RabbitMQ: ready, waiting for a retry backoff, dead-lettered; and consumers."""

    queue: str
    ready: int
    delayed: int
    dead_lettered: int
    consumers: int


class JobsSummary(BaseModel):
    window_s: float
    since: UtcDatetime
    jobs_by_status: dict[JobStatus, int] = Field(description="every job record, by status")
    ended_in_window: dict[JobStatus, int]
    success_rate: float | None = Field(
        description="completed (with or without gaps) over completed plus failed, in the window; "
        "cancelled jobs do not count"
    )
    duration_s: Durations
    clips: ClipCounts = Field(description="clips of the jobs that ended in the window, by outcome")
    placeholder_ratio: float | None
    queues: dict[Stage, QueueDepth] | None = Field(description="null when the broker cannot be reached")
    queues_error: str | None = None


def summarize(
    ctx: Context, *, window_s: float, queues: dict[str, Any] | None = None, now: datetime | None = None
) -> JobsSummary:
    """Jobs by status (all records), and over jobs that ended in the window: success rate (completed,
    with or without gaps, over those plus failed; cancelled jobs do not count), job duration from
    submit to final status, and the share of slots that got a placeholder. ``queues`` is what
    ``actors.queues.depths`` gives (``{"error": ...}`` when the broker is unreachable)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=window_s)
    by_status = {s: 0 for s in JobStatus}
    by_status.update({JobStatus(k): v for k, v in ctx.store.count_by_status().items()})
    ended = ctx.store.finished_since(since)
    succeeded = [j for j in ended if j.status in SUCCEEDED]
    failed = [j for j in ended if j.status == JobStatus.FAILED.value]
    decided = len(succeeded) + len(failed)
    durations = [
        (as_utc(j.finished_at) - as_utc(j.created_at)).total_seconds()
        for j in succeeded + failed
        if j.finished_at and j.created_at
    ]
    clips = ClipCounts(total=0)
    for job in ended:
        stats = ClipStats.from_metrics(job.metrics)
        if stats is not None:
            clips = clips + stats.counts
    queues_error = str(queues["error"]) if queues and "error" in queues else None
    return JobsSummary(
        window_s=window_s,
        since=since,
        jobs_by_status=by_status,
        ended_in_window=dict(sorted(Counter(JobStatus(j.status) for j in ended).items())),
        success_rate=round(len(succeeded) / decided, 4) if decided else None,
        duration_s=Durations(
            count=len(durations),
            avg=round(sum(durations) / len(durations), 3) if durations else None,
            p95=_round(percentile(durations, 95)),
            max=_round(max(durations) if durations else None),
        ),
        clips=clips,
        placeholder_ratio=round(clips.placeholder / clips.total, 4) if clips.total else None,
        queues=None if queues is None or queues_error else queues,  # type: ignore[arg-type]
        queues_error=queues_error,
    )


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
