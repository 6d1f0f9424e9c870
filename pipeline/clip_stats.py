"""clip_stats (FR-005): what the clip stage did, from the clips' records; clip counts by outcome. Pure."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .models import ClipOutcome, ClipRecord


class ClipCounts(BaseModel):
    """Clips of a job by outcome (the outcomes' public names); ``done`` have one, ``total`` is the slots."""

    model_config = ConfigDict(extra="ignore")

    total: int = Field(ge=0)
    done: int = Field(default=0, ge=0)
    succeeded: int = Field(default=0, ge=0)
    fallback_local: int = Field(default=0, ge=0)
    placeholder: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)

    @classmethod
    def of(cls, total: int, outcomes: Iterable[ClipOutcome | str]) -> ClipCounts:
        seen = Counter(ClipOutcome(o) for o in outcomes)
        return cls(total=total, done=sum(seen.values()), **{o.public_name: seen[o] for o in ClipOutcome})

    def __add__(self, other: ClipCounts) -> ClipCounts:
        return ClipCounts(**{k: getattr(self, k) + getattr(other, k) for k in ClipCounts.model_fields})


class ClipStats(ClipCounts):
    """``metrics.render.clip_stats`` of a job record, the report and the status object (DESIGN.md)."""

    retries: int = Field(default=0, ge=0, description="clip attempts beyond each clip's first")
    avg_extract_ms: float | None = Field(default=None, description="cutting an ok clip from its source")
    p95_extract_ms: float | None = None
    max_extract_ms: float | None = None
    avg_queue_wait_ms: float | None = Field(default=None, description="from enqueue to the clip starting")
    peak_concurrency: int = Field(default=0, ge=0, description="most clips running at once, measured")
    configured_concurrency: int = Field(default=0, ge=0)
    bytes_fetched: int = Field(
        default=0, ge=0, description="playlists, segments (prefetched ones no clip used included), song"
    )
    segments_fetched: int = Field(default=0, ge=0)
    duplicate_segments: int = Field(default=0, ge=0, description="segments shared by clips")
    max_drift_ms: float = Field(default=0.0, ge=0)
    total_drift_ms: float = Field(default=0.0, ge=0)
    assembly_ms: float | None = Field(default=None, description="concat, mux and report")

    @property
    def counts(self) -> ClipCounts:
        return ClipCounts(**{k: getattr(self, k) for k in ClipCounts.model_fields})

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any] | None) -> ClipStats | None:
        """The clip_stats stored in a job record's ``metrics`` (None before assembly)."""
        raw = ((metrics or {}).get("render") or {}).get("clip_stats")
        if not raw:
            return None
        return cls.model_validate(dict(raw, done=raw.get("done", raw.get("total", 0))))


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
    unclaimed_prefetch_bytes: int = 0,
) -> ClipStats:
    recs = list(records)
    extract = [r.extract_ms for r in recs if r.extract_ms is not None and r.outcome == ClipOutcome.OK]
    waits = [r.queue_wait_ms for r in recs if r.queue_wait_ms is not None]
    drifts = [abs(r.drift_ms) for r in recs if r.outcome != ClipOutcome.FAILED]
    p95 = percentile(extract, 95)
    counts = ClipCounts.of(len(recs), (r.outcome for r in recs))
    return ClipStats(
        **counts.model_dump(),
        retries=sum(max(0, r.attempts - 1) for r in recs),
        avg_extract_ms=_mean(extract),
        p95_extract_ms=round(p95, 1) if p95 is not None else None,
        max_extract_ms=round(max(extract), 1) if extract else None,
        avg_queue_wait_ms=_mean(waits),
        peak_concurrency=peak_concurrency,
        configured_concurrency=configured_concurrency,
        bytes_fetched=sum(r.bytes_fetched for r in recs) + playlist_bytes + unclaimed_prefetch_bytes,
        segments_fetched=sum(r.segments_fetched for r in recs),
        duplicate_segments=sum(r.segments_shared for r in recs),
        max_drift_ms=round(max(drifts), 3) if drifts else 0.0,
        total_drift_ms=round(sum(drifts), 3),
    )
