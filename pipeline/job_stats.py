"""Statistics over the job records (spec 004): what ``GET /stats`` and ``clipline stats`` show."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from .clip_stats import percentile
from .context import Context
from .models import ClipOutcome, JobStatus

SUCCEEDED = (JobStatus.COMPLETED.value, JobStatus.COMPLETED_WITH_GAPS.value)


def summarize(
    ctx: Context, *, window_s: float, queues: dict[str, Any] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Jobs by status (all records), and over jobs that ended in the window: success rate (completed,
    with or without gaps, over those plus failed; cancelled jobs do not count), job duration from
    submit to final status, and the share of slots that got a placeholder."""
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=window_s)
    by_status = {s.value: 0 for s in JobStatus}
    by_status.update(ctx.store.count_by_status())
    ended = ctx.store.finished_since(since)
    succeeded = [j for j in ended if j.status in SUCCEEDED]
    failed = [j for j in ended if j.status == JobStatus.FAILED.value]
    decided = len(succeeded) + len(failed)
    durations = [
        (_aware(j.finished_at) - _aware(j.created_at)).total_seconds()
        for j in succeeded + failed
        if j.finished_at and j.created_at
    ]
    clips = {"total": 0, **{o.public_name: 0 for o in ClipOutcome}}
    for job in ended:
        stats = (job.metrics or {}).get("render", {}).get("clip_stats") or {}
        for key in clips:
            clips[key] += int(stats.get(key) or 0)
    return {
        "window_s": window_s,
        "since": since.isoformat(),
        "jobs_by_status": by_status,
        "ended_in_window": dict(sorted(Counter(j.status for j in ended).items())),
        "success_rate": round(len(succeeded) / decided, 4) if decided else None,
        "duration_s": {
            "count": len(durations),
            "avg": round(sum(durations) / len(durations), 3) if durations else None,
            "p95": _round(percentile(durations, 95)),
            "max": _round(max(durations) if durations else None),
        },
        "clips": clips,
        "placeholder_ratio": round(clips["placeholder"] / clips["total"], 4) if clips["total"] else None,
        "queues": queues,
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
