"""extract_clip: cut one clip; transient failures retry with backoff, the rest go to fallback."""

from __future__ import annotations

import time

import dramatiq
from dramatiq.middleware import CurrentMessage

from pipeline import clipstage
from pipeline.errors import FieldProblem, infrastructure_unavailable
from pipeline.logs import bind_job
from pipeline.rejects import Reason
from pipeline.stages import Stage
from pipeline.storage import StorageUnavailable

from . import names
from .rejects import reject_in_actor
from .runtime import context
from .sender import send

QUEUE = names.QUEUE[Stage.CLIP]


class TransientClipError(Exception):
    """Raised to make the broker retry a clip with backoff; wraps the real error."""


def extract_clip(job_id: str, index: int, trace_id: str | None = None) -> None:
    """The job's attempt the clip is for comes in the message's options (``names.JOB_ATTEMPT``)."""
    ctx = context()
    message = CurrentMessage.get_current_message()
    retries = int(message.options.get("retries", 0)) if message else 0
    job_attempt = names.job_attempt(message.options) if message else None
    with bind_job(job_id, trace_id), ctx.limit.slot() as slot:
        queue_wait_ms = (time.time() * 1000 - message.message_timestamp) if message and not retries else None
        try:
            step = clipstage.run_clip(
                ctx,
                job_id,
                index,
                attempt=retries + 1,
                max_attempts=ctx.settings.clip_max_retries + 1,
                queue_wait_ms=queue_wait_ms,
                parallel_slot=slot,
                job_attempt=job_attempt,
            )
        except clipstage.SlotOutOfRange as exc:
            problem = FieldProblem("(message).args[1]", str(exc))
            return reject_in_actor(QUEUE, Reason.BAD_ARGUMENTS, [problem], None)
    match step:
        case clipstage.Done(fire=True):
            send(Stage.ASSEMBLE, job_id, trace_id)
        case clipstage.Retry(error=error, job_attempt=attempt):
            if message is not None and attempt is not None:  # the broker's retry is for the same attempt,
                message.options.setdefault(names.JOB_ATTEMPT, attempt)  # also when an old message lacked it
            raise TransientClipError(str(error)) from error
        case clipstage.Fallback(reason=reason, job_attempt=attempt):
            send(Stage.FALLBACK, job_id, index, reason, trace_id, job_attempt=attempt)


#: Retries of a clip message whose Redis or database could not be reached (taking a slot, recording the
#: outcome): with the backoff (0.5 s doubling to 10 s by default) about a minute of outage is ridden out.
INFRA_RETRIES = 10


def retry_when(retries: int, exc: Exception) -> bool:
    """Only errors the clip stage marked transient are retried; anything else is a bug, dead-lettered.

    A store that fails for now while a finished clip's outcome is recorded is retried too, and so is
    Redis or the database unreachable anywhere in the message (``INFRA_RETRIES`` times: after that the
    message is dead-lettered and the reconciler re-sends the slot once the job is stale).
    """
    if isinstance(exc, TransientClipError | dramatiq.RateLimitExceeded | StorageUnavailable):
        return True
    return infrastructure_unavailable(exc) and retries < INFRA_RETRIES
