"""Messages Dramatiq cannot hand to an actor, seen before they are dead-lettered (``pipeline.rejects``).

Two cases happen before any actor runs, so they are caught here:

- a body that is not a Dramatiq message (not JSON, JSON with a key given twice,
  NaN or a number too large for a double, a bare request, an
  envelope with missing or unknown fields): ``RejectingEncoder.decode`` sees it
  in the consumer thread, reports it and raises DecodeError as Dramatiq's own
  encoder does (Dramatiq then dead-letters it);
- an actor name no stage has: ``InvalidMessages.before_nack`` sees the
  message Dramatiq failed with ActorNotFound.

Dramatiq logs both with a traceback; ``pipeline.rejects`` logs them once with
what was wrong, so ``QuietDuplicates`` drops Dramatiq's two lines.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.encoder import JSONEncoder, MessageData
from dramatiq.errors import ActorNotFound, DecodeError

from pipeline import rejects
from pipeline.errors import FieldProblem
from pipeline.problems import load_json
from pipeline.stages import Stage

from . import names
from .runtime import context

PLAN_QUEUE = names.QUEUE[Stage.PLAN]


def consumer_queue() -> str | None:
    """The queue of the Dramatiq consumer thread running this code (None outside a worker's consumer)."""
    queue = getattr(threading.current_thread(), "queue_name", None)
    return q_name(queue) if isinstance(queue, str) else None


class RejectingEncoder(JSONEncoder):
    """Dramatiq's JSON encoder, which reports a body it cannot make a message of before refusing it."""

    def decode(self, data: bytes) -> MessageData:
        try:  # strictly: a key given twice, NaN or a number too large is refused like text that is not JSON
            fields = load_json(data)
        except ValueError as exc:
            self._reject(data)
            raise DecodeError(f"not valid JSON: {exc}", data, exc) from exc
        problems = rejects.envelope_problems(fields)
        if problems:
            self._reject(data)
            what = "not a Dramatiq message: " + "; ".join(problems)
            raise DecodeError(what, data, ValueError(what))
        return fields

    @staticmethod
    def _reject(data: bytes) -> None:
        queue = consumer_queue()
        if queue is None:  # decoding outside a consumer (an operator's tool reading a DLQ): not a delivery
            return
        request, what = rejects.request_in(bytes(data))
        rejects.reject(
            context(),
            queue=queue,
            reason=rejects.Reason.UNDECODABLE,
            problems=[FieldProblem("(message)", what)],
            request=request if queue == PLAN_QUEUE else None,
            raw=bytes(data) if request is None and queue == PLAN_QUEUE else None,
            call_back_now=False,  # a consumer thread must not wait on a receiver: the pump sends it
        )


class InvalidMessages(dramatiq.Middleware):
    """Reports a message for an actor no stage has, before Dramatiq dead-letters it."""

    def before_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if not isinstance(getattr(message, "_exception", None), ActorNotFound):
            return
        queue = q_name(message.queue_name)
        wanted = {names.QUEUE[s]: names.ACTOR[s] for s in Stage}.get(queue, "?")
        args = message.args
        rejects.reject(
            context(),
            queue=queue,
            reason=rejects.Reason.UNKNOWN_ACTOR,
            problems=[FieldProblem("actor_name", f"no actor {message.actor_name!r}: {queue} is {wanted}'s")],
            request=args[0] if queue == PLAN_QUEUE and args else None,
            call_back_now=False,
        )


class QuietDuplicates(logging.Filter):
    """Drops Dramatiq's log lines for the messages ``pipeline.rejects`` has already logged."""

    PREFIXES = ("Failed to decode message", "Received message for undefined actor")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.PREFIXES))


def install(broker: dramatiq.Broker) -> None:
    """Report invalid messages on ``broker``'s worker: the encoder, the middleware and the log filter."""
    dramatiq.set_encoder(RejectingEncoder())
    broker.add_middleware(InvalidMessages())
    quiet = QuietDuplicates()
    logging.getLogger("dramatiq.brokers.rabbitmq._RabbitmqConsumer").addFilter(quiet)
    for stage in Stage:
        for queue in (names.QUEUE[stage], names.delay_queue(stage)):
            logging.getLogger(f"dramatiq.worker.ConsumerThread({queue})").addFilter(quiet)


def reject_in_actor(queue: str, reason: rejects.Reason, problems: list[FieldProblem], request: Any) -> None:
    """From inside an actor: report the message, and have Dramatiq dead-letter it without a traceback
    (the message is failed, not raised: nothing to retry, nothing more to log)."""
    rejects.reject(context(), queue=queue, reason=reason, problems=problems, request=request)
    from dramatiq.middleware import CurrentMessage

    fail = getattr(CurrentMessage.get_current_message(), "fail", None)  # the worker's MessageProxy
    if callable(fail):
        fail()
