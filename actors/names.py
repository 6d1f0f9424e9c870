"""Wire names of the stages: queues and actors. They are contracts (DESIGN.md) and must not change."""

from __future__ import annotations

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


def delay_queue(stage: Stage) -> str:
    """Where Dramatiq parks the stage's messages waiting for a retry backoff (``render.clip.DQ``)."""
    return dq_name(QUEUE[stage])


def dead_letter_queue(stage: Stage) -> str:
    """Where Dramatiq moves the stage's messages that failed for good (``render.clip.XQ``)."""
    return xq_name(QUEUE[stage])
