"""fallback_clip: cut from the local copy, else a black placeholder; records why."""

from __future__ import annotations

from pipeline import clipstage
from pipeline.logs import bind_job
from pipeline.stages import Stage

from .runtime import context
from .sender import send


def fallback_clip(job_id: str, index: int, reason: str, trace_id: str | None = None) -> None:
    ctx = context()
    # Fallback cuts count against the same cluster-wide clip cap as HLS cuts.
    with bind_job(job_id, trace_id), ctx.limit.slot() as slot:
        step = clipstage.run_fallback(ctx, job_id, index, reason, parallel_slot=slot)
    if isinstance(step, clipstage.Done) and step.fire:
        send(Stage.ASSEMBLE, job_id, trace_id)
