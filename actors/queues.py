"""Looking at the broker from outside a worker: queue depths per stage (passive declares: nothing is
created), whether each stage queue has the arguments this clipline declares, and the readiness check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq.errors
import pika
import pika.exceptions

from pipeline.reconcile import Backlog
from pipeline.settings import Settings
from pipeline.stages import Stage

from . import names
from .rabbit import PRECONDITION_FAILED, PriorityBroker, QueueNeedsMigration

#: What a failed talk with the broker raises: pika's errors, and Dramatiq's wrapping of them on send.
BROKER_ERRORS: tuple[type[Exception], ...] = (
    pika.exceptions.AMQPError,
    dramatiq.errors.BrokerConnectionError,
)

#: Dramatiq's queues per stage: ready messages, delayed (retry backoff) and dead-lettered.
KINDS: dict[str, Callable[[Stage], str]] = {
    "ready": lambda stage: names.QUEUE[stage],
    "delayed": names.delay_queue,
    "dead_lettered": names.dead_letter_queue,
}


def depths(settings: Settings, *, timeout_s: float = 3.0) -> dict[str, Any]:
    """{stage: {"queue", "ready", "delayed", "dead_lettered", "consumers"}}; {"error": ...} if unreachable.

    A queue not declared yet (no worker ever started for it) counts as 0.
    """
    try:
        conn = connect(settings, timeout_s=timeout_s)
    except pika.exceptions.AMQPError as exc:
        return {"error": f"broker unreachable: {type(exc).__name__}: {exc}"}
    out: dict[str, Any] = {}
    try:
        for stage in Stage:
            row: dict[str, Any] = {"queue": names.QUEUE[stage]}
            for kind, queue_of in KINDS.items():
                channel = conn.channel()
                try:
                    ok = channel.queue_declare(queue=queue_of(stage), passive=True)
                    row[kind] = ok.method.message_count
                    if kind == "ready":
                        row["consumers"] = ok.method.consumer_count
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:  # 404: not declared yet
                    row[kind] = 0
                    row.setdefault("consumers", 0)
            out[stage] = row
    finally:
        conn.close()
    return out


def clip_backlog(settings: Settings, *, timeout_s: float = 3.0) -> Backlog | None:
    """The reconciler's view of the clip stages (``reconcile.Backlog``): clip and fallback messages ready
    or delayed in the broker, and the fewer of the two queues' consumers; None when the broker does not
    answer (its repairs then count, as a stage gone for good needs)."""
    try:
        found = depths(settings, timeout_s=timeout_s)
    except BROKER_ERRORS:  # the connection lost half-way through the reading: no reading this sweep
        return None
    if "error" in found:
        return None
    stages = (Stage.CLIP, Stage.FALLBACK)
    waiting = sum(found[s]["ready"] + found[s]["delayed"] for s in stages)
    return Backlog(waiting=waiting, consumers=min(found[s]["consumers"] for s in stages))


def connect(settings: Settings, *, timeout_s: float = 3.0) -> pika.BlockingConnection:
    """A short-lived connection for inspection (one attempt, bounded waits). Raises pika's AMQPError."""
    params = pika.URLParameters(settings.broker_url)
    params.socket_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def check_broker(settings: Settings) -> None:
    """Readiness: the broker accepts a connection and no stage queue needs ``clipline queues migrate``.
    Raises pika's AMQPError, or QueueNeedsMigration naming the first old queue."""
    conn = connect(settings)
    try:
        for queue in stage_queues():
            if queue_state(conn, queue) == "old":
                raise QueueNeedsMigration(
                    queue, f"not x-max-priority={expected_arguments(queue)['x-max-priority']}"
                )
    finally:
        conn.close()


def stage_queues() -> list[str]:
    """The queues whose arguments carry ``x-max-priority``: each stage's queue and its ``.DQ``."""
    return [q for stage in Stage for q in (names.QUEUE[stage], names.delay_queue(stage))]


def expected_arguments(queue: str) -> dict[str, Any]:
    """What the workers declare ``queue`` with (Dramatiq's dead-lettering plus ``x-max-priority``)."""
    return PriorityBroker(url="amqp://unused", middleware=[]).queue_arguments(queue)


def queue_state(conn: pika.BlockingConnection, queue: str) -> str:
    """One of "absent" (the workers will declare it), "ok" (declared as this clipline declares it) or "old"
    (other arguments: it needs ``clipline queues migrate``). Creates nothing."""
    channel = conn.channel()
    try:
        channel.queue_declare(queue=queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:  # 404
        return "absent"
    try:
        channel.queue_declare(queue=queue, durable=True, arguments=expected_arguments(queue))
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            return "old"
        raise
    channel.close()
    return "ok"
