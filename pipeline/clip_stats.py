"""clip_stats (FR-005): what the clip stage did, from the clips' records. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .models import ClipOutcome, ClipRecord


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def clip_stats(
    records: Iterable[ClipRecord],
    *,
    peak_concurrency: int,
    configured_concurrency: int,
    playlist_bytes: int = 0,
) -> dict[str, Any]:
    recs = list(records)
    by = {o.value: sum(1 for r in recs if r.outcome == o.value) for o in ClipOutcome}
    extract = [r.extract_ms for r in recs if r.extract_ms is not None and r.outcome == ClipOutcome.OK]
    waits = [r.queue_wait_ms for r in recs if r.queue_wait_ms is not None]
    drifts = [abs(r.drift_ms) for r in recs if r.outcome != ClipOutcome.FAILED]
    p95 = percentile(extract, 95)
    return {
        "total": len(recs),
        **{o.public_name: by[o] for o in ClipOutcome},
        "retries": sum(max(0, r.attempts - 1) for r in recs),
        "avg_extract_ms": _mean(extract),
        "p95_extract_ms": round(p95, 1) if p95 is not None else None,
        "max_extract_ms": round(max(extract), 1) if extract else None,
        "avg_queue_wait_ms": _mean(waits),
        "peak_concurrency": peak_concurrency,
        "configured_concurrency": configured_concurrency,
        "bytes_fetched": sum(r.bytes_fetched for r in recs) + playlist_bytes,
        "segments_fetched": sum(r.segments_fetched for r in recs),
        "duplicate_segments": sum(r.segments_shared for r in recs),
        "max_drift_ms": round(max(drifts), 3) if drifts else 0.0,
        "total_drift_ms": round(sum(drifts), 3),
    }
