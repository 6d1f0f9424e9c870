"""clipline's Prometheus metrics (names prefixed ``clipline_``), fed through the domain's Observer hooks."""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram

from pipeline.observe import Observer
from pipeline.stages import Stage

from .command import STAGE_ENV

CLIPS_IN_FLIGHT = Gauge("clipline_clips_in_flight", "Clips being cut right now", multiprocess_mode="livesum")
CLIP_OUTCOMES = Counter("clipline_clip_outcomes_total", "Clips that reached a final outcome", ["outcome"])
CLIP_EXTRACT_SECONDS = Histogram(
    "clipline_clip_extract_seconds",
    "Time to cut one clip from its source",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 120),
)
CLIP_QUEUE_WAIT_SECONDS = Histogram(
    "clipline_clip_queue_wait_seconds",
    "Time from enqueue to a clip starting",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
RETRIES = Counter("clipline_clip_retries_total", "Clip attempts that will be retried", ["reason"])
SOURCE_RESOLUTIONS = Counter("clipline_source_resolutions_total", "Video API lookups", ["result"])
CLIP_CACHE_LOOKUPS = Counter(
    "clipline_clip_cache_lookups_total",
    "Lookups in the cross-job clip cache (CLIPLINE_CLIP_CACHE_BYTES)",
    ["result"],
)
BYTES_FETCHED = Counter("clipline_bytes_fetched_total", "Bytes read from the CDN")
JOBS = Counter("clipline_jobs_total", "Jobs that reached a final status", ["status"])
JOB_SECONDS = Histogram(
    "clipline_job_duration_seconds",
    "Submit to final status",
    buckets=(10, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600),
)
INVALID_MESSAGES = Counter(
    "clipline_invalid_messages_total",
    "Messages dead-lettered because they can never be processed (bad JSON, invalid request, bad arguments)",
    ["queue", "reason"],
)
CLIP_CONCURRENCY = Gauge(
    "clipline_clip_concurrency",
    "Clips this worker command may cut at once: each clip process's cap (lowered by a cluster-wide cap), "
    "summed over its processes; 0 where no process consumes the clip queue",
    multiprocess_mode="livesum",  # as clipline_clips_in_flight: sum() of one over sum() of the other
)


def report_clip_concurrency(value: int) -> None:
    """Set the gauge in a process that consumes the clip queue; a plan, fallback or assemble process cuts
    no clip under this cap and reports none (its capacity would be counted in any sum)."""
    if os.environ.get(STAGE_ENV) == Stage.CLIP.value:
        CLIP_CONCURRENCY.set(value)


class PrometheusObserver(Observer):
    def source_resolution(self, result: str) -> None:
        SOURCE_RESOLUTIONS.labels(result).inc()

    def bytes_fetched(self, nbytes: int) -> None:
        if nbytes:
            BYTES_FETCHED.inc(nbytes)

    def clip_started(self, queue_wait_ms: float | None) -> None:
        CLIPS_IN_FLIGHT.inc()
        if queue_wait_ms is not None:
            CLIP_QUEUE_WAIT_SECONDS.observe(queue_wait_ms / 1000)

    def clip_finished(self) -> None:
        CLIPS_IN_FLIGHT.dec()

    def clip_outcome(self, outcome: str, extract_ms: float | None) -> None:
        CLIP_OUTCOMES.labels(outcome).inc()
        if extract_ms is not None and outcome == "ok":
            CLIP_EXTRACT_SECONDS.observe(extract_ms / 1000)

    def clip_cache(self, result: str) -> None:
        CLIP_CACHE_LOOKUPS.labels(result).inc()

    def retry(self, reason: str) -> None:
        RETRIES.labels(reason).inc()

    def job_finished(self, status: str, duration_s: float) -> None:
        JOBS.labels(status).inc()
        JOB_SECONDS.observe(duration_s)

    def message_rejected(self, queue: str, reason: str) -> None:
        INVALID_MESSAGES.labels(queue, reason).inc()

    def config_changed(self, key: str, old: object, new: object) -> None:
        if key == "render_clip_concurrency":
            from .runtime import context

            report_clip_concurrency(context().live.clip_concurrency())
