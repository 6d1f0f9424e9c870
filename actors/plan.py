"""plan_render: validate, record the job, fan out a clip per line, resolve each distinct video once."""

from __future__ import annotations

from typing import Any

import structlog

from pipeline import planning
from pipeline.logs import bind_job, clip_event
from pipeline.stages import Stage

from .runtime import context
from .sender import send

log = structlog.get_logger("clipline.plan")


def plan_render(request: dict[str, Any]) -> None:
    ctx = context()
    job_id = request.get("job_id") if isinstance(request, dict) else None
    trace_id = request.get("trace_id") if isinstance(request, dict) else None
    with bind_job(job_id, trace_id):
        plan = planning.plan(ctx, request)  # RequestInvalid/JobConflict: dead-lettered (actor `throws`)
        with bind_job(plan.job_id, plan.request.trace_id):
            if not plan.fan_out:
                log.info("plan.skip", reason=plan.reason)
                return
            for line_index, line in enumerate(plan.request.lines):
                send(Stage.CLIP, plan.job_id, line_index, plan.request.trace_id)
                clip_event(
                    log,
                    job_id=plan.job_id,
                    index=line_index,
                    status="queued",
                    parallel_slot=None,
                    attempt=0,
                    video_id=line.clip.video_id,
                )
            planning.fanned_out(ctx, plan)
