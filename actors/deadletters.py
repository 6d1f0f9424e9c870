"""Dead letters: the messages Dramatiq gave up on, in each stage's ``.XQ`` queue (``render.clip.XQ``).

RabbitMQ keeps them for ``dramatiq_dead_message_ttl`` (7 days by default) and then drops them. Here an
operator can look at them, send them back to their stage, or delete them (``clipline dlq``).

Browsing takes messages without acknowledging them and closes the channel, which puts every one back
where it was. Requeueing publishes the message to its stage's queue (persistent, publisher confirms)
with its retry count reset, and only then acknowledges the dead letter: a crash in between leaves a
copy in both places, which the idempotent actors absorb, never none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from pipeline.records import iso
from pipeline.settings import Settings
from pipeline.stages import Stage

from . import names
from .queues import connect


@dataclass(frozen=True)
class DeadLetter:
    stage: Stage
    message_id: str
    actor: str | None
    job_id: str | None
    clip_index: int | None
    retries: int
    enqueued_at: datetime | None  # when it was first sent (Dramatiq's message_timestamp)
    dead_lettered_at: datetime | None  # when RabbitMQ moved it here (x-death)
    error: str | None  # the last line of the last traceback, if Dramatiq kept one
    traceback: str | None
    body: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "message_id": self.message_id,
            "actor": self.actor,
            "job_id": self.job_id,
            "clip_index": self.clip_index,
            "retries": self.retries,
            "enqueued_at": iso(self.enqueued_at),  # ...Z, as every timestamp of the contracts
            "dead_lettered_at": iso(self.dead_lettered_at),
            "error": self.error,
        }

    def detail(self) -> dict[str, Any]:
        try:
            message: Any = json.loads(self.body)
        except ValueError:
            message = self.body.decode("utf-8", "replace")
        return {**self.summary(), "traceback": self.traceback, "message": message}


class DeadLetterNotFound(LookupError):
    """No dead letter with that message id in the stage's dead-letter queue."""


def _parse(stage: Stage, props: pika.BasicProperties, body: bytes) -> DeadLetter:
    try:
        msg = json.loads(body)
        if not isinstance(msg, dict):
            raise ValueError("not an object")
    except ValueError:
        msg = {}
    args: list[Any] = msg["args"] if isinstance(msg.get("args"), list) else []
    first = args[0] if args else None
    job_id = first.get("job_id") if isinstance(first, dict) else first if isinstance(first, str) else None
    index = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    options: dict[str, Any] = msg["options"] if isinstance(msg.get("options"), dict) else {}
    tb = options.get("traceback") if isinstance(options.get("traceback"), str) else None
    stamp = msg.get("message_timestamp")
    deaths = (props.headers or {}).get("x-death") or []
    died = deaths[0].get("time") if deaths and isinstance(deaths[0], dict) else None
    return DeadLetter(
        stage=stage,
        message_id=str(msg.get("message_id") or props.message_id or "?"),
        actor=msg.get("actor_name"),
        job_id=str(job_id) if job_id is not None else None,
        clip_index=index,
        retries=int(options.get("retries") or 0),
        enqueued_at=datetime.fromtimestamp(stamp / 1000, UTC) if isinstance(stamp, int | float) else None,
        dead_lettered_at=died.astimezone(UTC) if isinstance(died, datetime) else None,
        error=tb.strip().splitlines()[-1] if tb and tb.strip() else None,
        traceback=tb,
        body=body,
    )


@contextmanager
def _channel(settings: Settings) -> Iterator[BlockingChannel]:
    conn = connect(settings)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        if conn.is_open:
            conn.close()  # unacknowledged messages go back where they were


def count(settings: Settings, stage: Stage) -> int:
    with _channel(settings) as channel:
        return _depth(channel, stage)


def _depth(channel: BlockingChannel, stage: Stage) -> int:
    try:
        return int(channel.queue_declare(names.dead_letter_queue(stage), passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker:  # 404: no worker ever declared it
        return 0


def _walk(
    settings: Settings, stage: Stage, visit: Callable[[BlockingChannel, int, DeadLetter], bool]
) -> None:
    """Take each dead letter once (at most as many as were there at the start); ``visit`` returns whether
    it acknowledged the delivery. Those it did not go back to the queue, in their order."""
    with _channel(settings) as channel:
        queue = names.dead_letter_queue(stage)
        for _ in range(_depth(channel, stage)):
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            visit(channel, method.delivery_tag, _parse(stage, props, body))


def browse(settings: Settings, stage: Stage, *, limit: int | None = None) -> list[DeadLetter]:
    """The stage's dead letters, oldest first, without removing any."""
    found: list[DeadLetter] = []

    def keep(_channel: BlockingChannel, _tag: int, letter: DeadLetter) -> bool:
        if limit is None or len(found) < limit:
            found.append(letter)
        return False

    _walk(settings, stage, keep)
    return found


def find(settings: Settings, stage: Stage, message_id: str) -> DeadLetter:
    for letter in browse(settings, stage):
        if letter.message_id == message_id:
            return letter
    raise DeadLetterNotFound(f"no dead letter {message_id!r} in {names.dead_letter_queue(stage)}")


def requeue(settings: Settings, stage: Stage, message_ids: Collection[str] | None) -> list[DeadLetter]:
    """Send the chosen dead letters (all when ``message_ids`` is None) back to the stage's queue with
    their retries reset; returns them. Unknown ids raise DeadLetterNotFound before anything moves."""
    _check_known(settings, stage, message_ids)
    moved: list[DeadLetter] = []

    def send_back(channel: BlockingChannel, tag: int, letter: DeadLetter) -> bool:
        if message_ids is not None and letter.message_id not in message_ids:
            return False
        channel.basic_publish(
            exchange="",
            routing_key=names.QUEUE[stage],
            body=_fresh_body(stage, letter.body),
            properties=pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )
        channel.basic_ack(tag)
        moved.append(letter)
        return True

    _walk(settings, stage, send_back)
    return moved


def purge(settings: Settings, stage: Stage, message_ids: Collection[str] | None) -> list[DeadLetter]:
    """Delete the chosen dead letters (all when ``message_ids`` is None); returns them."""
    _check_known(settings, stage, message_ids)
    gone: list[DeadLetter] = []

    def drop(channel: BlockingChannel, tag: int, letter: DeadLetter) -> bool:
        if message_ids is not None and letter.message_id not in message_ids:
            return False
        channel.basic_ack(tag)
        gone.append(letter)
        return True

    _walk(settings, stage, drop)
    return gone


def _check_known(settings: Settings, stage: Stage, message_ids: Collection[str] | None) -> None:
    if message_ids is None:
        return
    present = {letter.message_id for letter in browse(settings, stage)}
    unknown = sorted(set(message_ids) - present)
    if unknown:
        raise DeadLetterNotFound(
            f"no dead letter {', '.join(map(repr, unknown))} in {names.dead_letter_queue(stage)}"
        )


def _fresh_body(stage: Stage, body: bytes) -> bytes:
    """The message as Dramatiq sent it first: retry count, traceback and backoff marks removed, so it gets
    its full retries again. A body that is not a Dramatiq message goes back unchanged."""
    try:
        msg = json.loads(body)
    except ValueError:
        return body
    if not isinstance(msg, dict) or not isinstance(msg.get("options"), dict):
        return body
    for key in ("retries", "traceback", "requeue_timestamp", "eta"):  # eta: a delayed message's due time
        msg["options"].pop(key, None)
    msg["queue_name"] = names.QUEUE[stage]
    return json.dumps(msg, separators=(",", ":")).encode()
