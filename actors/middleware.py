"""Cross-cutting worker behaviour: Prometheus in multiprocess mode, live config refresh, the cancel
watcher, and the parent watch (a worker process dies with the dramatiq command that forked it)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware.prometheus import Prometheus

from pipeline.liveconfig import REFRESH_S

from .runtime import context


class WorkerPrometheus(Prometheus):
    """Dramatiq's own actor metrics, written to the shared multiprocess directory.

    Two changes to Dramatiq's middleware: the exposition server is not forked
    (``clipline worker`` serves all its processes on CLIPLINE_METRICS_PORT), and
    message durations are published in base units as
    ``dramatiq_message_duration_seconds`` instead of ``..._milliseconds``, so a
    scrape passes ``promtool check metrics``.
    """

    @property
    def forks(self) -> list[Any]:
        return []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        super().after_process_boot(broker)
        import prometheus_client as prom

        self.message_durations = prom.Histogram(
            "dramatiq_message_duration_seconds",
            "The time spent processing messages.",
            ["queue_name", "actor_name"],
            buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900),
            registry=prom.CollectorRegistry(),
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        labels = (message.queue_name, message.actor_name)
        started_ms = self.message_start_times.pop(message.message_id, None)
        if started_ms is not None:
            self.message_durations.labels(*labels).observe((time.time() * 1000 - started_ms) / 1000)
        self.inprogress_messages.labels(*labels).dec()
        self.total_messages.labels(*labels).inc()
        if exception is not None:
            self.total_errored_messages.labels(*labels).inc()

    after_skip_message = after_process_message


class LiveSettings(dramatiq.Middleware):
    """Re-reads live settings in the background so changes are applied (and logged) within seconds."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        ctx = context()
        ctx.live.refresh(force=True)
        from .metrics import report_clip_concurrency

        report_clip_concurrency(ctx.live.clip_concurrency())
        threading.Thread(target=self._loop, name="clipline-live-config", daemon=True).start()

    def _loop(self) -> None:
        ctx = context()
        while not self._stop.wait(REFRESH_S):
            try:
                ctx.live.refresh()
            except Exception:  # noqa: BLE001 - a refresh failure is logged by LiveConfig and retried
                pass

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()


class CancelWatcher(dramatiq.Middleware):
    """Stops the running ffmpeg of cancelled jobs in this process (polls the cancelled set every second),
    and counts the job ends handed over by processes that serve no metrics (``observe.HandOver``)."""

    POLL_S = 1.0

    def __init__(self) -> None:
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        threading.Thread(target=self._loop, name="clipline-cancel-watch", daemon=True).start()

    def _loop(self) -> None:
        from pipeline import keys
        from pipeline.observe import take_handed_over
        from pipeline.subprocesses import kill_tagged

        ctx = context()
        while not self._stop.wait(self.POLL_S):
            try:
                for raw in ctx.redis.smembers(keys.cancelled()):
                    kill_tagged(keys.text(raw))
                take_handed_over(ctx.redis, ctx.observer)
            except Exception:  # noqa: BLE001 - a Redis hiccup must not end the watcher
                pass

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()


class ParentWatch(dramatiq.Middleware):
    """A worker process dies with the dramatiq command that forked it.

    ``clipline worker`` starts each stage's dramatiq command so that it is SIGKILLed when the
    supervisor dies (``pipeline.subprocesses.spawn``); that command forks the worker processes,
    which Dramatiq does not tie to it. At boot each one asks the kernel for the same
    (PR_SET_PDEATHSIG, SIGKILL: it fires when the forking thread, the command's main thread, ends),
    so no worker process keeps consuming with an old configuration after its supervisor is gone.
    Its running ffmpeg die with it (each is tied to the thread that started it).
    """

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        import multiprocessing

        from pipeline.subprocesses import die_with_parent

        parent = multiprocessing.parent_process()
        if parent is not None and parent.pid is not None:  # forked by the dramatiq command
            die_with_parent(parent.pid)


def metrics_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
