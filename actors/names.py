"""Wire names of the stages: queues and actors. They are contracts (DESIGN.md) and must not change."""

from __future__ import annotations

from typing import Any

from dramatiq.common import dq_name, xq_name

from pipeline.stages import Stage

QUEUE = {
    Stage.PLAN: "render.plan",
    Stage.CLIP: "render.clip",
    Stage.FALLBACK: "render.fallback",
    Stage.ASSEMBLE: "render.assemble",
}
ACTOR = {
    Stage.PLAN: "plan_render",
    Stage.CLIP: "extract_clip",
    Stage.FALLBACK: "fallback_clip",
    Stage.ASSEMBLE: "assemble_render",
}


#: The message option naming the job's attempt a clip or fallback message is for (``pipeline.fencing``).
#: An option, not an argument: a clipline without it ignores it, and a message without it (queued by
#: such a clipline) is taken to be for the attempt its job is at when it starts.
JOB_ATTEMPT = "job_attempt"


def job_attempt(options: dict[str, Any]) -> int | None:
    """The attempt a message's options name; None when absent (or not a positive integer)."""
    value = options.get(JOB_ATTEMPT)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def delay_queue(stage: Stage) -> str:
    """Where Dramatiq parks the stage's messages waiting for a retry backoff (``render.clip.DQ``)."""
    return dq_name(QUEUE[stage])


def dead_letter_queue(stage: Stage) -> str:
    """Where Dramatiq moves the stage's messages that failed for good (``render.clip.XQ``)."""
    return xq_name(QUEUE[stage])
