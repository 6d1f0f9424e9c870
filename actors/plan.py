"""plan_render: validate, record the job, fan out a clip per line, resolve each distinct video once."""

from __future__ import annotations

from typing import Any

import structlog
from dramatiq.middleware import CurrentMessage

from pipeline import heartbeat, planning, priority
from pipeline.context import Context
from pipeline.errors import FieldProblem, JobConflict, RequestInvalid
from pipeline.logs import bind_job, clip_event
from pipeline.rejects import Reason
from pipeline.stages import Stage

from . import names
from .rejects import reject_in_actor
from .runtime import context
from .sender import send

QUEUE = names.QUEUE[Stage.PLAN]

log = structlog.get_logger("clipline.plan")


def plan_render(*args: Any, **kwargs: Any) -> None:
    """Takes the request as its one argument. A message that can never be planned (other arguments, an
    invalid request, a conflicting job_id) is reported (``pipeline.rejects``) and dead-lettered."""
    ctx = context()
    request = args[0] if args else None
    ids = [request.get(k) if isinstance(request, dict) else None for k in ("job_id", "trace_id")]
    with bind_job(*(i if isinstance(i, str) else None for i in ids)):
        if len(args) != 1 or kwargs:
            keywords = f" and keyword argument(s) {', '.join(sorted(kwargs))}" if kwargs else ""
            got = f"plan_render takes the request as its one argument; got {len(args)} argument(s){keywords}"
            problem = FieldProblem("(message).args", got)
            return reject_in_actor(QUEUE, Reason.BAD_ARGUMENTS, [problem], request)
        message = CurrentMessage.get_current_message()
        try:
            plan = planning.plan(ctx, request, message_id=message.message_id if message else None)
        except RequestInvalid as exc:
            return reject_in_actor(QUEUE, Reason.INVALID_REQUEST, exc.problems, request)
        except JobConflict as exc:
            return reject_in_actor(QUEUE, Reason.CONFLICT, [FieldProblem("job_id", str(exc))], request)
        with bind_job(plan.job_id, plan.request.trace_id):
            if not plan.fan_out:
                log.info("plan.skip", reason=plan.reason)
                return None
            # The heartbeat tells the reconciler this planner is alive; a SIGKILLed one's plan lock is freed.
            with heartbeat.beating(ctx.redis, plan.job_id, Stage.PLAN):
                _fan_out(ctx, plan)
    return None


def _fan_out(ctx: Context, plan: planning.Plan) -> None:
    """A clip message per line at the job's priority, then the plan's own end (``planning.fanned_out``)."""
    rank = priority.job_priority(ctx.store, plan.job_id, plan.total)
    try:
        for line_index, line in enumerate(plan.request.lines):
            if ctx.completion.has(plan.job_id, line_index):  # a resumed fan-out: this clip is done
                continue
            trace_id = plan.request.trace_id
            send(Stage.CLIP, plan.job_id, line_index, trace_id, priority=rank, job_attempt=plan.attempt)
            clip_event(
                log,
                job_id=plan.job_id,
                index=line_index,
                status="queued",
                parallel_slot=None,
                attempt=0,
                video_id=line.clip.video_id,
            )
        ctx.completion.mark_sent(plan.job_id)
        planning.fanned_out(ctx, plan)
    except BaseException:
        planning.release(ctx, plan.job_id)  # the broker's retry may plan again at once
        raise
