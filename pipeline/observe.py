"""Hooks through which the domain reports what it measures, without knowing Prometheus.

The actors package supplies a subclass that feeds Prometheus; tests use the
no-op base (or a recording one). Processes that serve no metrics but may end
a job (``clipline cancel``, the worker command's sweeper) use ``HandOver``:
the job's end is counted by a worker process that takes it from Redis.
"""

from __future__ import annotations

import json
import time

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import keys

log = structlog.get_logger("clipline.metrics")

#: Job ends kept for the workers at most (the oldest dropped, when no worker has taken any for that long).
HANDED_OVER_MAX = 10_000
#: How long a hand-over waits on Redis, and after it failed, how long later ends are not tried (the
#: sweeper ends many jobs in a row while Redis is unreachable: none waits on it again).
HAND_OVER_TIMEOUT_S = 5.0
HAND_OVER_PAUSE_S = 60.0


class Observer:
    def source_resolution(self, result: str) -> None:
        """result: hit | miss | error."""

    def bytes_fetched(self, nbytes: int) -> None:
        """Bytes read from the CDN (playlists, segments, audio)."""

    def clip_started(self, queue_wait_ms: float | None) -> None:
        """A clip left the queue and began work."""

    def clip_finished(self) -> None:
        """A clip stopped working (whatever the result)."""

    def clip_outcome(self, outcome: str, extract_ms: float | None) -> None:
        """A clip reached a final outcome: ok | local | placeholder | failed."""

    def clip_cache(self, result: str) -> None:
        """A lookup in the cross-job clip cache: hit | miss | uncacheable (no ETag or length)."""

    def retry(self, reason: str) -> None:
        """A transient failure will be retried; reason is the error class name."""

    def job_finished(self, status: str, duration_s: float) -> None:
        """A job reached a final status."""

    def config_changed(self, key: str, old: object, new: object) -> None:
        """A live setting changed (``clipline config set``)."""

    def message_rejected(self, queue: str, reason: str) -> None:
        """A message that can never be processed was dead-lettered (``rejects.Reason``)."""


NULL_OBSERVER = Observer()


class HandOver(Observer):
    """Hands each job's end to the worker processes through Redis (``keys.job_ends_to_count``), so that
    ``clipline_jobs_total`` and the job duration count it even when the process that ended the job
    serves no metrics. A worker process takes them every second (``take_handed_over``)."""

    def __init__(self, client: redis.Redis) -> None:
        """``client``: one that fails within seconds when Redis does not answer (``from_url``)."""
        self._redis = client
        self._failed_at: float | None = None  # monotonic

    @classmethod
    def from_url(cls, redis_url: str) -> HandOver:
        """With a client of its own that waits ``HAND_OVER_TIMEOUT_S`` at most and never retries."""
        return cls(
            redis.Redis.from_url(
                redis_url,
                socket_connect_timeout=HAND_OVER_TIMEOUT_S,
                socket_timeout=HAND_OVER_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
        )

    def job_finished(self, status: str, duration_s: float) -> None:
        now = time.monotonic()
        if self._failed_at is not None and now - self._failed_at < HAND_OVER_PAUSE_S:
            log.warning("metrics.job_end_not_counted", status=status, error="Redis unreachable moments ago")
            return
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(keys.job_ends_to_count(), json.dumps([status, round(duration_s, 3)]))
                pipe.ltrim(keys.job_ends_to_count(), -HANDED_OVER_MAX, -1)
                pipe.expire(keys.job_ends_to_count(), keys.JOB_KEY_TTL_S)
                pipe.execute()
            self._failed_at = None
        except redis.RedisError as exc:  # the job did end; only its count is lost
            self._failed_at = now
            log.warning("metrics.job_end_not_counted", status=status, error=f"{type(exc).__name__}: {exc}")


def take_handed_over(r: redis.Redis, observer: Observer, limit: int = 100) -> int:
    """Count through ``observer`` up to ``limit`` job ends handed over (each taken by one process only);
    returns how many. An entry that is not ``[status, seconds]`` is dropped."""
    taken: list[bytes | str] = r.lpop(keys.job_ends_to_count(), limit) or []  # type: ignore[assignment]
    for raw in taken:
        try:
            status, duration_s = json.loads(raw)
            observer.job_finished(str(status), float(duration_s))
        except (ValueError, TypeError):
            log.warning("metrics.job_end_unreadable", value=keys.text(raw)[:200])
    return len(taken)
