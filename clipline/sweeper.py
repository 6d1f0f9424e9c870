"""The periodic work of ``clipline worker`` (assemble stage or all): reconcile sweep, retention, webhooks,
and aborting the store's lost multipart uploads.

One sweeper acts per interval across the cluster (a Redis lock with the
interval as its lifetime), so running several worker commands is safe.
"""

from __future__ import annotations

import threading

import structlog

from pipeline import keys, reconcile, retention, webhooks
from pipeline.context import Context
from pipeline.settings import Settings

log = structlog.get_logger("clipline.reconcile")


class Sweeper:
    """Background threads of a worker command that runs assembly: the reconcile sweep (with retention and
    missed webhooks, one sweeper per interval cluster-wide) and the webhook pump (retries due deliveries)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name="clipline-reconcile", daemon=True),
            threading.Thread(target=self._pump, name="clipline-webhooks", daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        ctx = Context(self.settings)
        from actors.sender import Sender

        send = Sender(self.settings)
        interval = self.settings.reconcile_interval_s
        while not self._stop.wait(interval):
            try:
                if ctx.redis.set(
                    keys.job_lock("_cluster", "reconcile"), "1", nx=True, ex=max(1, int(interval))
                ):
                    reconcile.sweep(ctx, send, stale_s=self.settings.reconcile_after_s)
                    webhooks.queue_missed(ctx)
                    if self.settings.retention_hours > 0:
                        retention.cleanup(ctx, self.settings.retention_hours * 3600)
                    reconcile.abort_lost_uploads(ctx)
            except Exception as exc:  # noqa: BLE001 - the sweep must outlive a broken Redis or database
                log.warning("reconcile.failed", error=f"{type(exc).__name__}: {exc}")

    def _pump(self) -> None:
        ctx = Context(self.settings)
        while not self._stop.wait(self.settings.webhook_poll_s):
            try:
                webhooks.deliver_due(ctx)
            except Exception as exc:  # noqa: BLE001 - a broken database must not end the pump
                log.warning("webhook.pump_failed", error=f"{type(exc).__name__}: {exc}")
