"""The RabbitMQ broker every clipline process uses: Dramatiq's, with priority queues.

Every stage queue (and its ``.DQ``) is declared with ``x-max-priority`` (``pipeline.priority``), so a
small job's clips overtake a big job's waiting ones. RabbitMQ cannot change the arguments of a queue
that exists: declaring ``render.clip`` with ``x-max-priority`` where an older clipline declared it
without fails with PRECONDITION_FAILED. That failure is raised here as ``QueueNeedsMigration``,
which names the fix (``clipline queues migrate``, ``actors.migrate``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import dq_name
from dramatiq.errors import BrokerConnectionError

from pipeline.priority import MAX_PRIORITY

#: AMQP's reply code for a declare whose arguments differ from the existing queue's.
PRECONDITION_FAILED = 406


class QueueNeedsMigration(BrokerConnectionError):
    """A stage queue exists with other arguments than this clipline declares (``x-max-priority``)."""

    def __init__(self, queue: str, detail: str) -> None:
        self.queue = queue
        super().__init__(
            f"queue {queue} was declared by an older clipline with other arguments ({detail}); stop the "
            f"workers of its stage and run `clipline queues migrate` (moves its messages to a queue with "
            f"x-max-priority={MAX_PRIORITY} and back; see README, 'Queue migration')"
        )


class PriorityBroker(RabbitmqBroker):
    """``RabbitmqBroker`` with ``max_priority=MAX_PRIORITY`` and a clear error for an old queue."""

    def __init__(self, *, url: str, **kwargs: Any) -> None:
        super().__init__(url=url, max_priority=MAX_PRIORITY, **kwargs)

    def queue_arguments(self, queue_name: str) -> dict[str, Any]:
        """The arguments this broker declares ``queue_name`` (a stage queue or its ``.DQ``) with."""
        return dict(self._build_queue_arguments(queue_name.removesuffix(".DQ")))

    def _declare_queue(self, queue_name: str) -> Any:
        return self._declare_or_explain(queue_name, super()._declare_queue, queue_name)

    def _declare_dq_queue(self, queue_name: str) -> Any:
        return self._declare_or_explain(dq_name(queue_name), super()._declare_dq_queue, queue_name)

    def _declare_or_explain(self, shown: str, declare: Callable[[str], Any], queue_name: str) -> Any:
        try:
            return declare(queue_name)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != PRECONDITION_FAILED:
                raise
            del self.connection  # the channel is closed: the next caller opens a new one
            raise QueueNeedsMigration(shown, exc.reply_text) from exc
