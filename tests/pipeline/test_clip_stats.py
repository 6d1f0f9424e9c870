"""clip_stats from clip records."""

from __future__ import annotations

from pipeline.clip_stats import ClipCounts, ClipStats, clip_stats, percentile
from pipeline.models import ClipOutcome, ClipRecord


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 50) == 50.0


def test_stats_count_outcomes_retries_bytes_and_drift() -> None:
    recs = [
        ClipRecord(
            0,
            "ok",
            attempts=1,
            extract_ms=100,
            queue_wait_ms=10,
            bytes_fetched=1000,
            segments_fetched=2,
            drift_ms=-16.667,
        ),
        ClipRecord(
            1, "ok", attempts=3, extract_ms=300, queue_wait_ms=30, bytes_fetched=500, segments_shared=1
        ),
        ClipRecord(2, "local", attempts=4, extract_ms=50, drift_ms=10.0),
        ClipRecord(3, "placeholder", attempts=1, extract_ms=20),
        ClipRecord(4, "failed", attempts=2),
    ]
    s = clip_stats(recs, peak_concurrency=3, configured_concurrency=4, playlist_bytes=200)
    assert (s.total, s.done, s.succeeded, s.fallback_local, s.placeholder, s.failed) == (5, 5, 2, 1, 1, 1)
    assert s.retries == 0 + 2 + 3 + 0 + 1
    assert s.avg_extract_ms == 200.0 and s.p95_extract_ms == 300.0 and s.max_extract_ms == 300.0
    assert s.avg_queue_wait_ms == 20.0
    assert s.bytes_fetched == 1700 and s.duplicate_segments == 1 and s.segments_fetched == 2
    assert s.max_drift_ms == 16.667 and s.total_drift_ms == 26.667
    assert (s.peak_concurrency, s.configured_concurrency) == (3, 4)
    assert s.counts == ClipCounts(total=5, done=5, succeeded=2, fallback_local=1, placeholder=1, failed=1)


def test_counts_by_outcome_use_the_public_names_and_add_up() -> None:
    live = ClipCounts.of(10, ["ok", ClipOutcome.OK, "placeholder"])
    assert live.model_dump() == {
        "total": 10,
        "done": 3,
        "succeeded": 2,
        "fallback_local": 0,
        "placeholder": 1,
        "failed": 0,
    }
    assert (live + ClipCounts.of(2, ["local", "failed"])).model_dump() == {
        "total": 12,
        "done": 5,
        "succeeded": 2,
        "fallback_local": 1,
        "placeholder": 1,
        "failed": 1,
    }


def test_clip_stats_of_a_record_written_before_the_model_read_back() -> None:
    # A job record of the previous release: no "done", no segments_fetched, no assembly_ms
    old = {"total": 4, "succeeded": 3, "fallback_local": 0, "placeholder": 1, "failed": 0, "retries": 1}
    stats = ClipStats.from_metrics({"render": {"clip_stats": old, "frames": 120}})
    assert stats is not None and stats.done == 4 and stats.segments_fetched == 0 and stats.assembly_ms is None
    assert ClipStats.from_metrics({}) is None and ClipStats.from_metrics(None) is None
