"""Build the broker in one place and register the four actors on it, each on its own queue.

Nothing connects at import: ``setup_broker`` is called by ``actors.app`` (the
module the dramatiq CLI loads), by the CLI before sending, and by tests with
a StubBroker. Retry policy is ours, not Dramatiq's defaults (20 retries,
backoff up to a week): a person is waiting for the video.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from pipeline.errors import JobConflict, RequestInvalid
from pipeline.settings import Settings
from pipeline.stages import Stage

from . import names, rejects
from .assemble import assemble_render
from .assemble import retry_when as assemble_retry_when
from .clip import extract_clip, retry_when
from .fallback import fallback_clip
from .middleware import CancelWatcher, LiveSettings, ParentWatch, WorkerPrometheus, metrics_enabled
from .plan import plan_render
from .rabbit import PriorityBroker

#: No Dramatiq time limit interrupts our stages: every subprocess carries its own timeout.
NO_TIME_LIMIT_MS = 24 * 3600 * 1000


def setup_broker(
    settings: Settings, broker: dramatiq.Broker | None = None, *, with_worker_middleware: bool = False
) -> dramatiq.Broker:
    """Make ``broker`` (by default a priority-queue RabbitMQ broker on ``settings.broker_url``, publisher
    confirms) the process's broker and register the four actors on it, each on its own queue.

    ``with_worker_middleware``: also the middleware a worker process needs (the parent watch, live
    settings, the cancel watcher, Prometheus when a multiprocess directory is set, the report of
    messages that can never be processed: ``actors.rejects``). Senders leave it off.
    Returns the broker. Connects lazily: nothing is opened until the first send or consume. Its queues
    are priority queues (``actors.rabbit``; the policy is ``pipeline.priority``).
    """
    if broker is None:
        broker = PriorityBroker(url=settings.broker_url, confirm_delivery=True)
    if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
        broker.add_middleware(CurrentMessage())
    if with_worker_middleware:
        broker.add_middleware(ParentWatch())
        broker.add_middleware(LiveSettings())
        broker.add_middleware(CancelWatcher())
        if metrics_enabled():
            broker.add_middleware(WorkerPrometheus())
        rejects.install(broker)
    backoff: dict[str, Any] = {
        "min_backoff": settings.retry_min_backoff_ms,
        "max_backoff": settings.retry_max_backoff_ms,
        "time_limit": NO_TIME_LIMIT_MS,
    }
    dramatiq.set_broker(broker)
    _register(broker, Stage.PLAN, plan_render, max_retries=5, throws=(RequestInvalid, JobConflict), **backoff)
    _register(
        broker,
        Stage.CLIP,
        extract_clip,
        max_retries=settings.clip_max_retries,
        retry_when=retry_when,
        **backoff,
    )
    _register(broker, Stage.FALLBACK, fallback_clip, max_retries=3, **backoff)
    _register(broker, Stage.ASSEMBLE, assemble_render, retry_when=assemble_retry_when, **backoff)
    return broker


def _register(broker: dramatiq.Broker, stage: Stage, fn: Callable[..., None], **options: Any) -> None:
    decorate = dramatiq.actor(
        actor_name=names.ACTOR[stage], queue_name=names.QUEUE[stage], broker=broker, **options
    )
    decorate(fn)
