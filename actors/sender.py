"""Sending a stage's message: the one way any process enqueues work.

Inside a worker the actors are registered on the process's broker, and
``send`` uses it. A process that is not a worker (the CLI, the HTTP API, the
sweeper, a benchmark) uses a ``Sender``: it sets the broker up once, on first
use, and every send after that goes through the same connection.
"""

from __future__ import annotations

import threading
from typing import Any

import dramatiq

from pipeline.settings import Settings
from pipeline.stages import Stage

from . import names


def send(stage: Stage, *args: Any) -> dramatiq.Message[Any]:
    """Enqueue ``stage``'s message on the broker the actors are registered on (publisher confirms on)."""
    return dramatiq.get_broker().get_actor(names.ACTOR[stage]).send(*args)


class Sender:
    """``sender(stage, *args)`` outside a worker; ``sender.enqueue_plan`` is what ``jobs.submit`` takes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._broker: dramatiq.Broker | None = None
        self._lock = threading.Lock()

    def __call__(self, stage: Stage, *args: Any) -> None:
        with self._lock:
            if self._broker is None:
                from .broker import setup_broker

                self._broker = setup_broker(self.settings)
        self._broker.get_actor(names.ACTOR[stage]).send(*args)

    def enqueue_plan(self, request: dict[str, Any]) -> None:
        self(Stage.PLAN, request)
