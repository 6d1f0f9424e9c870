"""Looking at the broker from outside a worker: queue depths per stage (passive declares: nothing is
created) and the readiness check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq.errors
import pika
import pika.exceptions

from pipeline.settings import Settings
from pipeline.stages import Stage

from . import names

#: What a failed talk with the broker raises: pika's errors, and Dramatiq's wrapping of them on send.
BROKER_ERRORS: tuple[type[Exception], ...] = (pika.exceptions.AMQPError, dramatiq.errors.ConnectionError)

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


def connect(settings: Settings, *, timeout_s: float = 3.0) -> pika.BlockingConnection:
    """A short-lived connection for inspection (one attempt, bounded waits). Raises pika's AMQPError."""
    params = pika.URLParameters(settings.broker_url)
    params.socket_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def check_broker(settings: Settings) -> None:
    """Readiness: the broker accepts a connection. Raises when it does not."""
    connect(settings).close()
