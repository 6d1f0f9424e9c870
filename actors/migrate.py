"""``clipline queues migrate``: give the stage queues declared by an older clipline their new arguments.

RabbitMQ cannot change a queue's arguments (``x-max-priority`` here): the queue must be deleted
and declared again. For each stage queue and its ``.DQ`` that has other arguments: move every
message to ``{queue}.migrating``, delete the queue, declare it as the workers do, move the messages
back (properties kept), delete ``{queue}.migrating``. None of those queues may have a consumer (the
workers stopped): that is checked for all of them before anything moves. Each message is
acknowledged only once the broker confirmed its copy, so a crash duplicates at most a few messages
(the stages are idempotent) and loses none; running the command again finishes the job (it also
drains a ``.migrating`` queue left behind).
"""

from __future__ import annotations

from dataclasses import dataclass

import pika
import pika.exceptions

from pipeline.errors import ClipLineError
from pipeline.settings import Settings

from .queues import connect, expected_arguments, queue_state, stage_queues


class MigrationRefused(ClipLineError):
    """A queue that needs migrating still has consumers (workers of its stage are running)."""


@dataclass(frozen=True)
class Migrated:
    queue: str
    state: str  # before: "absent", "ok" or "old"
    moved: int  # messages moved out and back (0 when nothing was done)
    done: bool  # the queue was re-declared (or left over messages were moved back)


def migrate(settings: Settings, *, dry_run: bool = False) -> list[Migrated]:
    """Migrate every stage queue that needs it (see the module); ``dry_run`` only says which."""
    conn = connect(settings, timeout_s=30.0)
    try:
        states = {queue: queue_state(conn, queue) for queue in stage_queues()}
        if not dry_run:
            _refuse_with_consumers(conn, [q for q, state in states.items() if state == "old"])
        return [_one(conn, queue, state, dry_run=dry_run) for queue, state in states.items()]
    finally:
        conn.close()


def _refuse_with_consumers(conn: pika.BlockingConnection, queues: list[str]) -> None:
    """Before anything moves: every queue to migrate must be without consumers."""
    for queue in queues:
        channel = conn.channel()
        consumers = int(channel.queue_declare(queue=queue, passive=True).method.consumer_count)
        channel.close()
        if consumers:
            raise MigrationRefused(
                f"queue {queue} has {consumers} consumer(s): stop the workers of its stage, then run "
                "`clipline queues migrate` again (nothing was changed)"
            )


def holding_name(queue: str) -> str:
    return f"{queue}.migrating"


def _one(conn: pika.BlockingConnection, queue: str, state: str, *, dry_run: bool) -> Migrated:
    holding = holding_name(queue)
    leftover = _depth(conn, holding)
    if dry_run or (state != "old" and leftover is None):
        return Migrated(queue, state, 0, False)
    channel = conn.channel()
    channel.confirm_delivery()
    moved = 0
    if state == "old":
        channel.queue_declare(queue=holding, durable=True)
        moved = _move(channel, queue, holding)
        channel.queue_delete(queue=queue, if_empty=True)
    channel.queue_declare(queue=queue, durable=True, arguments=expected_arguments(queue))
    back = _move(channel, holding, queue)
    channel.queue_delete(queue=holding, if_empty=True)
    channel.close()
    return Migrated(queue, state, max(moved, back), True)


def _depth(conn: pika.BlockingConnection, queue: str) -> int | None:
    """Messages in ``queue``; None when it does not exist."""
    channel = conn.channel()
    try:
        depth = int(channel.queue_declare(queue=queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    channel.close()
    return depth


def _move(channel: pika.adapters.blocking_connection.BlockingChannel, source: str, target: str) -> int:
    """Move every message of ``source`` to ``target``, each acknowledged after its copy is confirmed."""
    moved = 0
    while True:
        method, properties, body = channel.basic_get(queue=source, auto_ack=False)
        if method is None:
            return moved
        channel.basic_publish("", target, body, properties=properties, mandatory=True)
        channel.basic_ack(delivery_tag=method.delivery_tag)
        moved += 1
