"""fallback_clip: cut from the local copy, else a black placeholder; records why."""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage

from pipeline import clipstage
from pipeline.errors import FieldProblem
from pipeline.logs import bind_job
from pipeline.rejects import Reason
from pipeline.stages import Stage

from . import names
from .rejects import reject_in_actor
from .runtime import context
from .sender import send

QUEUE = names.QUEUE[Stage.FALLBACK]


def fallback_clip(job_id: str, index: int, reason: str, trace_id: str | None = None) -> None:
    """The job's attempt the fallback is for comes in the message's options (``names.JOB_ATTEMPT``)."""
    ctx = context()
    message = CurrentMessage.get_current_message()
    job_attempt = names.job_attempt(message.options) if message else None
    # Fallback cuts count against the same cluster-wide clip cap as HLS cuts.
    with bind_job(job_id, trace_id), ctx.limit.slot() as slot:
        try:
            step = clipstage.run_fallback(
                ctx, job_id, index, reason, parallel_slot=slot, job_attempt=job_attempt
            )
        except clipstage.SlotOutOfRange as exc:
            problem = FieldProblem("(message).args[1]", str(exc))
            return reject_in_actor(QUEUE, Reason.BAD_ARGUMENTS, [problem], None)
    if isinstance(step, clipstage.Done) and step.fire:
        send(Stage.ASSEMBLE, job_id, trace_id)
