"""Queue depths per stage, read from RabbitMQ (passive declares: nothing is created)."""

from __future__ import annotations

from typing import Any

import pika
import pika.exceptions

from actors import names
from pipeline.settings import Settings

#: Dramatiq's queues per stage: ready messages, delayed (retry backoff) and dead-lettered.
KINDS = {"ready": "", "delayed": ".DQ", "dead_lettered": ".XQ"}


def depths(settings: Settings, *, timeout_s: float = 3.0) -> dict[str, Any]:
    """{stage: {"queue", "ready", "delayed", "dead_lettered", "consumers"}}; {"error": ...} if unreachable.

    A queue not declared yet (no worker ever started for it) counts as 0.
    """
    params = pika.URLParameters(settings.broker_url)
    params.socket_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    params.connection_attempts = 1
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        return {"error": f"broker unreachable: {type(exc).__name__}: {exc}"}
    out: dict[str, Any] = {}
    try:
        for stage in names.STAGES:
            base = names.QUEUE[stage]
            row: dict[str, Any] = {"queue": base}
            for kind, suffix in KINDS.items():
                channel = conn.channel()
                try:
                    ok = channel.queue_declare(queue=base + suffix, passive=True)
                    row[kind] = ok.method.message_count
                    if not suffix:
                        row["consumers"] = ok.method.consumer_count
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:  # 404: not declared yet
                    row[kind] = 0
                    row.setdefault("consumers", 0)
            out[stage] = row
    finally:
        conn.close()
    return out
