"""Sending a stage's message: the one way any process enqueues work.

Inside a worker the actors are registered on the process's broker, and
``send`` uses it. A process that is not a worker (the CLI, the HTTP API, the
sweeper, a benchmark) uses a ``Sender``: it sets the broker up once, on first
use, and every send after that goes through the same connection.

Priority (``pipeline.priority``): the fan-out gives each clip message its job's priority; a message
sent while a message is being processed (clip -> fallback, clip -> assemble) inherits that message's
priority, so a small job stays ahead through every stage. Without either it is 0, the lowest.

``job_attempt`` (clip and fallback messages): the job's attempt the message is for, carried as the
message option ``names.JOB_ATTEMPT`` (``pipeline.fencing``).
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from pipeline.settings import Settings
from pipeline.stages import Stage

from . import names


def send(
    stage: Stage,
    *args: Any,
    priority: int | None = None,
    delay_ms: int | None = None,
    job_attempt: int | None = None,
) -> dramatiq.Message[Any]:
    """Enqueue ``stage``'s message on the broker the actors are registered on (publisher confirms on),
    at ``priority`` (by default the priority of the message being processed, if any), ``delay_ms`` later
    when given (through the stage's delay queue), for the job's attempt ``job_attempt`` when given."""
    actor = dramatiq.get_broker().get_actor(names.ACTOR[stage])
    options = {**_priority(priority), **_attempt(job_attempt)}
    return actor.send_with_options(args=args, delay=delay_ms, **options)


def _attempt(job_attempt: int | None) -> dict[str, Any]:
    return {} if job_attempt is None else {names.JOB_ATTEMPT: int(job_attempt)}


def _priority(priority: int | None) -> dict[str, Any]:
    if priority is None:
        current = CurrentMessage.get_current_message()
        priority = current.options.get("broker_priority") if current is not None else None
    return {} if priority is None else {"broker_priority": int(priority)}


class Sender:
    """``sender(stage, *args)`` outside a worker; ``sender.enqueue_plan`` is what ``jobs.submit`` takes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._broker: dramatiq.Broker | None = None
        self._lock = threading.Lock()

    def __call__(
        self, stage: Stage, *args: Any, priority: int | None = None, job_attempt: int | None = None
    ) -> None:
        with self._lock:
            if self._broker is None:
                from .broker import setup_broker

                self._broker = setup_broker(self.settings)
        options = {**_priority(priority), **_attempt(job_attempt)}
        self._broker.get_actor(names.ACTOR[stage]).send_with_options(args=args, **options)

    def enqueue_plan(self, request: dict[str, Any]) -> None:
        self(Stage.PLAN, request)
