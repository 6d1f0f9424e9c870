"""assemble_render: concatenate, mux the song, write final.mp4 and report.json (once per job)."""

from __future__ import annotations

from pipeline import assembly, heartbeat
from pipeline.logs import bind_job
from pipeline.stages import Stage

from .runtime import context


def assemble_render(job_id: str, trace_id: str | None = None) -> None:
    ctx = context()
    # The heartbeat tells the reconciler this assembly is alive; a SIGKILLed one's lock is freed at once.
    with bind_job(job_id, trace_id), heartbeat.beating(ctx.redis, job_id, Stage.ASSEMBLE):
        assembly.assemble(ctx, job_id)
