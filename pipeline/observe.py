"""Hooks through which the domain reports what it measures, without knowing Prometheus.

The actors package supplies a subclass that feeds Prometheus; tests and the
CLI use the no-op base (or a recording one).
"""

from __future__ import annotations


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
