"""The periodic work of ``clipline worker`` (assemble stage or all): reconcile sweep, retention, webhooks,
and aborting the store's lost multipart uploads; and, on every host, removing its scratch of jobs whose
records are gone (``OrphanSweeper`` for a worker command without the assemble stage).

One sweeper acts per interval across the cluster (a Redis lock with the
interval as its lifetime), so running several worker commands is safe.

When Redis cannot be reached, no sweep can run; once it has been unreachable for
``reconcile.redis_gone_bound_s`` in a row, each sweep ends the jobs that made no
progress for that long, in SQL alone (``reconcile.end_without_redis``): a job
never waits for ever on a coordination store that is gone for good.
"""

from __future__ import annotations

import threading
import time

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline import keys, reconcile, retention, webhooks
from pipeline.context import Context
from pipeline.observe import HandOver
from pipeline.settings import Settings

log = structlog.get_logger("clipline.reconcile")

#: How often each host removes the scratch of jobs whose records are gone (``retention``).
ORPHANS_EVERY_S = 3600.0
#: How long the sweeper waits on Redis (connecting, or for an answer) before taking it for unreachable.
REDIS_TIMEOUT_S = 10.0


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
        # This thread's own client: a Redis that stops answering (a host gone, packets dropped) fails a
        # call within seconds instead of hanging the sweeper, which must then end jobs without it; no
        # retries of its own (the next sweep is the retry), so ending many jobs without Redis stays quick.
        client = redis.Redis.from_url(
            self.settings.redis_url,
            health_check_interval=30,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        # this process serves no metrics of its own: jobs the reconciler ends are counted by the workers
        ctx = Context(self.settings, observer=HandOver(client))
        ctx.redis = client
        orphans = _Orphans(ctx)
        from actors.queues import clip_backlog
        from actors.sender import Sender

        send = Sender(self.settings)
        interval = self.settings.reconcile_interval_s
        lost_at: float | None = None  # monotonic: since when every try to reach Redis failed
        while not self._stop.wait(interval):
            orphans.when_due()  # on every host, not once per cluster: the scratch is local
            try:
                try:
                    mine = ctx.redis.set(
                        keys.job_lock("_cluster", "reconcile"), "1", nx=True, ex=max(1, int(interval))
                    )
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    lost_at = time.monotonic() if lost_at is None else lost_at
                    self._without_redis(ctx, time.monotonic() - lost_at, exc)
                    continue
                lost_at = None
                if mine:
                    reconcile.sweep(
                        ctx,
                        send,
                        stale_s=self.settings.reconcile_after_s,
                        backlog=lambda: clip_backlog(self.settings),
                    )
                    webhooks.queue_missed(ctx)
                    if self.settings.retention_hours > 0:
                        retention.cleanup(ctx, self.settings.retention_hours * 3600)
                    reconcile.abort_lost_uploads(ctx)
            except Exception as exc:  # noqa: BLE001 - the sweep must outlive a broken Redis or database
                log.warning("reconcile.failed", error=f"{type(exc).__name__}: {exc}")

    def _without_redis(self, ctx: Context, gone_s: float, exc: Exception) -> None:
        """Redis unreachable: say so, and once for long enough end the jobs nothing can move any more."""
        cause = f"{type(exc).__name__}: {exc}"
        bound = reconcile.redis_gone_bound_s(self.settings)
        log.warning("reconcile.failed", error=cause, redis_unreachable_s=round(gone_s, 1), bound_s=bound)
        if gone_s >= bound:
            for r in reconcile.end_without_redis(ctx, redis_gone_s=gone_s, cause=cause):
                log.warning("reconcile.repaired", job_id=r.job_id, action=r.action, detail=r.detail)

    def _pump(self) -> None:
        ctx = Context(self.settings)
        while not self._stop.wait(self.settings.webhook_poll_s):
            try:
                webhooks.deliver_due(ctx)
            except Exception as exc:  # noqa: BLE001 - a broken database must not end the pump
                log.warning("webhook.pump_failed", error=f"{type(exc).__name__}: {exc}")


class _Orphans:
    """This host's scratch of jobs whose records are gone, removed every ``ORPHANS_EVERY_S`` (first at
    the first call)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._due = 0.0  # monotonic

    def when_due(self) -> None:
        if time.monotonic() < self._due:
            return
        self._due = time.monotonic() + ORPHANS_EVERY_S
        try:
            retention.remove_orphan_scratch(self.ctx)
        except Exception as exc:  # noqa: BLE001 - the database down: next time
            log.warning("retention.orphans_failed", error=f"{type(exc).__name__}: {exc}")


class OrphanSweeper:
    """A worker command without the assemble stage (clip or fallback hosts: they cut into the same
    scratch) removes its host's orphaned scratch too, on a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clipline-orphans", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        orphans = _Orphans(Context(self.settings))
        while not self._stop.wait(self.settings.reconcile_interval_s):
            orphans.when_due()
