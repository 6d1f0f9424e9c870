"""Repair jobs whose coordination state was lost: Redis restarted, a message dropped, a fan-in never fired.

Redis holds the completion sets; the clips' sidecar files (``{index}.json``
beside each clip) and the job record are the durable truth. A sweep looks at
every unfinished job that has made no progress for ``stale_s`` seconds and:

- PENDING or PLANNING with no live planner (``heartbeat``; a dead one's plan lock is freed):
  re-sends the plan;
- EXTRACTING: re-records every clip outcome found on disk (idempotent, so
  nothing counts twice; the recording that completes the set fires assembly as
  usual), re-sends the clips that have no outcome anywhere, and re-sends
  assembly when every outcome is recorded but the job never moved on;
- ASSEMBLING with no live assembler: re-sends assembly. An assembler that
  died holding the lock (SIGKILL, OOM) stops beating (``heartbeat``): its lock
  is freed and the temporary files it left in the output directory removed.
  When Redis lost the heartbeats with everything else, a holder counts as dead
  only once none has beaten for a whole heartbeat TTL: a running assembler is
  never doubled by a second one.

Every message it sends is idempotent at its stage, so a repair that races the
real thing costs work, never correctness. A repaired job's ``updated_at`` is
touched, so the next sweep waits another ``stale_s`` before acting again.

Repairs are bounded: a job (attempt) repaired ``CLIPLINE_RECONCILE_MAX_REPAIRS``
times in a row that is still stuck is failed with the reason (the last repair
tried), its callback fires, and it can be retried. "In a row": the count starts
again when the job has moved since its last repair (its status or progress, which
only go forward within an attempt, so a job that keeps moving still ends in
bounded time); before, repairs of a job that could not be planned for a while
used up those of its slow clips later. A repair counts once its messages
are sent, so a broker outage (every send failing) uses up none. The count
lives with the job's Redis keys, so a retry starts again from zero.

A job whose clips are only waiting is not stuck: while the clip and fallback queues hold messages
and each has a consumer (``Backlog``, from the broker), a repair that would only re-send the job's
missing clips is neither counted nor made, save once per ``(CLIPLINE_RECONCILE_MAX_REPAIRS + 1) x
CLIPLINE_RECONCILE_AFTER_S`` (uncounted: a message lost behind the backlog is replaced, and the
duplicates are skipped at the clip stage). Without that, a job queued behind a backlog longer than its
repairs (9 minutes by default) was failed as stuck, each repair adding all its clips to the backlog
again (found by the chaos soak, seed 11). With no consumer on either queue, or the broker not
answering, repairs count as before: every job still ends in bounded time when a stage is gone.

Without Redis (unreachable, not merely restarted) no repair can be made and no
liveness read, but every job still ends in bounded time: once a sweeper has
failed to reach Redis for ``redis_gone_bound_s`` (``(CLIPLINE_RECONCILE_MAX_REPAIRS
+ 1) x CLIPLINE_RECONCILE_AFTER_S``, as long as the repairs would have taken),
``end_without_redis`` fails, in SQL alone, each unfinished job that has made no
progress for that long (ASSEMBLING: at least the assembly timeout + 120 s, the
assembly lock's lifetime, so no assembler can still be running; PLANNING: at
least the plan lock's lifetime), naming Redis as the cause. Several sweepers may
do so at once (without Redis there is no cluster lock): the compare-and-set on
the job's status and attempt lets exactly one of them end each job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog

from . import assembly, clipstage, heartbeat, job_end, keys, planning, priority, webhooks
from .context import Context
from .errors import JobNotFound
from .models import JobStatus
from .settings import Settings
from .stages import Stage
from .storage import uploads

log = structlog.get_logger("clipline.reconcile")

Send = Callable[..., Any]
#: The action of a repair that re-sends a job's clips that have no outcome anywhere.
CLIPS_RESENT = "clips re-sent"
Held = tuple[tuple[Any, ...], dict[str, Any]]  # a message's arguments and options, held


@dataclass(frozen=True)
class Backlog:
    """The clip stages' queues as the broker sees them."""

    waiting: int  # clip and fallback messages ready or delayed in the broker
    consumers: int  # the fewer of the clip and the fallback queues' consumers


@dataclass(frozen=True)
class Repair:
    job_id: str
    action: str
    detail: str = ""


def sweep(
    ctx: Context,
    send: Send,
    *,
    stale_s: float,
    now: datetime | None = None,
    backlog: Callable[[], Backlog | None] | None = None,
) -> list[Repair]:
    """One pass over unfinished jobs idle for ``stale_s``; ``send(stage, *args, priority=None,
    job_attempt=None)`` enqueues a message (re-sent clips and assemblies at the job's priority,
    ``pipeline.priority``; re-sent clips for the job's attempt swept, ``pipeline.fencing``);
    ``backlog()`` reads the clip stages' queues (None: the broker did not answer), at most once a sweep."""
    at = now or datetime.now(UTC)
    cutoff = at - timedelta(seconds=stale_s)
    repairs: list[Repair] = []
    queues = functools.cache(backlog) if backlog is not None else lambda: None  # read once a sweep
    for job in ctx.store.unfinished(updated_before=cutoff):
        status = JobStatus(job.status)
        trace_id = job.trace_id
        done: list[Repair] = []
        messages: list[Held] = []  # sent once the repair is known to be within its bound

        def hold(*args: Any, _into: list[Held] = messages, **kw: Any) -> None:
            _into.append((args, kw))

        if status in (JobStatus.PENDING, JobStatus.PLANNING):
            done += _planning(ctx, hold, job.id, job.request, status)
        elif status == JobStatus.EXTRACTING:
            done += _extracting(ctx, hold, job.id, trace_id, job.attempts)
        elif status == JobStatus.ASSEMBLING:
            done += _assembling(ctx, hold, job.id, trace_id, job.attempts)
        if not done:
            continue
        mark = f"{status.value}:{job.progress}"  # where the job stands: both only go forward
        backlog_now = queues() if all(r.action == CLIPS_RESENT for r in done) else None
        waiting = backlog_now is not None and _waits_its_turn(backlog_now)
        if backlog_now is not None and waiting and not _resend_due(ctx, job.id, at, stale_s):
            ctx.store.advance(job.id)  # touch updated_at: looked at again in stale_s, as after a repair
            log.info(
                "reconcile.waiting",
                job_id=job.id,
                detail=done[0].detail,
                queued=backlog_now.waiting,
                consumers=backlog_now.consumers,
            )
            continue
        moved = _moved(ctx, job.id, mark)
        if not waiting and not moved and _repairs(ctx, job.id) >= ctx.settings.reconcile_max_repairs:
            repairs.append(_give_up(ctx, job.id, status, done))
            continue
        for args, kw in messages:
            send(*args, **kw)  # the broker down: raises, and the repair is not counted (tried next sweep)
        if waiting:  # re-sent behind the backlog: not counted, and not again before the next period
            ctx.redis.set(keys.job_waiting_resent(job.id), str(at.timestamp()), ex=keys.JOB_KEY_TTL_S)
        else:
            _count_repair(ctx, job.id, mark, moved)
        ctx.store.advance(job.id)  # touch updated_at: the next sweep gives the repair time to work
        for r in done:
            extra = {"waiting": True} if waiting else {}
            log.warning("reconcile.repaired", job_id=r.job_id, action=r.action, detail=r.detail, **extra)
        repairs += done
    return repairs


def _waits_its_turn(backlog: Backlog | None) -> bool:
    """The clip stages have messages queued and someone consuming each: a job's missing clips may simply
    be behind them."""
    return backlog is not None and backlog.waiting > 0 and backlog.consumers > 0


def _resend_due(ctx: Context, job_id: str, at: datetime, stale_s: float) -> bool:
    """A waiting job's clips are re-sent (uncounted) at most once per its repairs' bound."""
    last = ctx.redis.get(keys.job_waiting_resent(job_id))
    if last is None:
        ctx.redis.set(keys.job_waiting_resent(job_id), str(at.timestamp()), ex=keys.JOB_KEY_TTL_S)
        return False  # first seen waiting: its clips were sent when it was planned or last repaired
    every = (ctx.settings.reconcile_max_repairs + 1) * stale_s
    return at.timestamp() - float(keys.text(last)) >= every


def _repairs(ctx: Context, job_id: str) -> int:
    """How many repairs of the job were sent so far."""
    return int(ctx.redis.get(keys.job_repairs(job_id)) or 0)


def _moved(ctx: Context, job_id: str, mark: str) -> bool:
    """The job stands elsewhere than at its last repair (``mark``: ``STATUS:progress``)."""
    last = ctx.redis.get(keys.job_repaired_at(job_id))
    return last is not None and keys.text(last) != mark


def _count_repair(ctx: Context, job_id: str, mark: str, moved: bool) -> None:
    """Count one more repair, once its messages are sent: a broker outage, during which every sweep's
    send fails, never uses up a healthy job's repairs. A job that ``moved`` since its last repair starts
    counting again at this one."""
    key = keys.job_repairs(job_id)
    pipe = ctx.redis.pipeline()
    if moved:
        pipe.set(key, 1, ex=keys.JOB_KEY_TTL_S)
    else:
        pipe.incr(key)
        pipe.expire(key, keys.JOB_KEY_TTL_S)
    pipe.set(keys.job_repaired_at(job_id), mark, ex=keys.JOB_KEY_TTL_S)
    pipe.execute()


def _give_up(ctx: Context, job_id: str, status: JobStatus, tried: list[Repair]) -> Repair:
    """Fail a job the repairs did not move: the error says why, report.json lists the clips it has and
    the lines without footage, its callback fires."""
    n = ctx.settings.reconcile_max_repairs
    what = "; ".join(f"{r.action}" + (f" ({r.detail})" if r.detail else "") for r in tried)
    error = f"stuck in {status.value}: gave up after {n} repairs by the reconciler (the last needed: {what})"
    if ctx.store.advance(job_id, status=JobStatus.FAILED, error=error, only_from=frozenset({status})):
        log.error("reconcile.gave_up", job_id=job_id, status=status.value, repairs=n, error=error)
        job_end.finished(ctx, job_id, JobStatus.FAILED)  # counted and logged as every job's end
        report = assembly.failure_report(ctx, job_id, error)  # written once the job is ours to fail
        if report is not None:
            ctx.store.advance(job_id, report_path=report, only_from=frozenset({JobStatus.FAILED}))
        assembly.cleanup(ctx, job_id, JobStatus.FAILED)
        webhooks.notify(ctx, job_id)
    return Repair(job_id, "failed: too many repairs", error)


def _planning(ctx: Context, send: Send, job_id: str, request: Any, status: JobStatus) -> list[Repair]:
    """Re-send the plan, unless a live planner holds the plan lock; a dead one's lock is freed first
    (its redelivered message would otherwise be skipped on it until ``planning.PLAN_LOCK_S``)."""
    lock = keys.job_lock(job_id, Stage.PLAN)
    detail = status.value
    if ctx.redis.exists(lock):
        if not heartbeat.gone(ctx.redis, job_id, Stage.PLAN):
            return []  # planning (or fanning out) right now
        ctx.redis.delete(lock)
        detail += "; the planner holding the plan lock is dead; lock freed"
    send(Stage.PLAN, request)
    return [Repair(job_id, "plan re-sent", detail)]


def _extracting(ctx: Context, send: Send, job_id: str, trace_id: str, attempt: int) -> list[Repair]:
    view = ctx.view(job_id)
    already = ctx.completion.done_count(job_id)
    found = clipstage.restore_from_disk(ctx, view)
    restored, missing, fired = found.restored, found.missing, found.fired
    out: list[Repair] = []
    if restored:
        out.append(Repair(job_id, "outcomes restored from disk", f"{restored} clip(s)"))
    assemble = fired or (not missing and not restored and already == len(view.slots))
    if not missing and not assemble:
        return out  # nothing to send: no need to rank the job
    # Re-sent messages rank as the fan-out ranks a job's clips (pipeline.priority), by what is left
    # to cut: a repaired small job is not pushed behind the big ones at priority 0.
    rank = priority.job_priority(ctx.store, job_id, len(missing))
    for index in missing:
        send(Stage.CLIP, job_id, index, trace_id, priority=rank, job_attempt=attempt)  # the attempt swept
    if missing:
        out.append(Repair(job_id, CLIPS_RESENT, f"slots {missing}"))
    if assemble:
        send(Stage.ASSEMBLE, job_id, trace_id, priority=rank)
        out.append(Repair(job_id, "assembly sent", "every slot has its outcome"))
    return out


def _assembling(ctx: Context, send: Send, job_id: str, trace_id: str, attempt: int) -> list[Repair]:
    if not heartbeat.gone(ctx.redis, job_id, Stage.ASSEMBLE):
        return []  # an assembler is at work (its lock may have gone with a Redis restart)
    if ctx.completion.done_count(job_id) < len(ctx.view(job_id).slots):  # outcomes lost: get them first
        return _extracting(ctx, send, job_id, trace_id, attempt)
    lock = keys.job_lock(job_id, Stage.ASSEMBLE)
    if ctx.redis.delete(lock):
        detail = "the assembler holding the lock is dead; lock freed"
    else:
        detail = "no assembler holds the lock"
    stray = assembly.remove_strays(ctx, job_id)  # a dead assembler's temporary final.mp4 or report.json
    if stray:
        detail += f"; removed {stray} temporary file(s)"
    send(Stage.ASSEMBLE, job_id, trace_id, priority=priority.job_priority(ctx.store, job_id, 0))
    return [Repair(job_id, "assembly re-sent", detail)]


def redis_gone_bound_s(settings: Settings) -> float:
    """How long Redis must be unreachable, and a job without progress, before the reconciler fails the job
    without Redis: as long as its repairs would have taken with Redis, ``(max repairs + 1) x stale time``."""
    return (settings.reconcile_max_repairs + 1) * settings.reconcile_after_s


def _idle_bound_s(settings: Settings, status: JobStatus) -> float:
    """How long a job in ``status`` must have made no progress before it is failed without Redis: no stage
    run can still be at work on it by then (an assembly outlives neither its timeout nor its lock)."""
    bound = redis_gone_bound_s(settings)
    if status == JobStatus.ASSEMBLING:
        return max(bound, settings.assemble_timeout_s + 120)
    if status == JobStatus.PLANNING:
        return max(bound, float(planning.PLAN_LOCK_S))
    return bound


def end_without_redis(
    ctx: Context, *, redis_gone_s: float, cause: str, now: datetime | None = None
) -> list[Repair]:
    """Fail, in SQL alone, every unfinished job idle past its bound (``_idle_bound_s``) while Redis has been
    unreachable for ``redis_gone_s`` seconds (the caller waits ``redis_gone_bound_s`` first): its clips'
    outcomes, locks and heartbeats are out of reach, so nothing can move it. A job still progressing
    (``updated_at`` recent) is left alone. Safe beside other sweepers doing the same: the status and attempt
    compare-and-set lets one of them end each job; only that one counts, reports and calls back."""
    now = now or datetime.now(UTC)
    out: list[Repair] = []
    for job in ctx.store.unfinished(updated_before=now - timedelta(seconds=redis_gone_bound_s(ctx.settings))):
        status = JobStatus(job.status)
        idle_s = _idle_bound_s(ctx.settings, status)
        updated = job.updated_at if job.updated_at.tzinfo else job.updated_at.replace(tzinfo=UTC)
        if updated >= now - timedelta(seconds=idle_s):
            continue  # may still be at work (an assembly within its timeout)
        error = (
            f"stuck in {status.value}: Redis (the coordination store) unreachable for {redis_gone_s:.0f} s "
            f"({cause}) and no progress for over {idle_s:.0f} s: failed by the reconciler; retry the job "
            "once Redis is back"
        )
        won = ctx.store.advance(
            job.id, status=JobStatus.FAILED, error=error, only_from=frozenset({status}), attempt=job.attempts
        )
        if not won:
            continue  # it moved, or another sweeper ended it
        log.error(
            "reconcile.gave_up", job_id=job.id, status=status.value, cause="redis unreachable", error=error
        )
        job_end.finished(ctx, job.id, JobStatus.FAILED, created_at=job.created_at)
        report = assembly.failure_report(ctx, job.id, error, with_redis=False)  # outcomes from the sidecars
        if report is not None:
            ctx.store.advance(job.id, report_path=report, only_from=frozenset({JobStatus.FAILED}))
        try:
            assembly.cleanup(ctx, job.id, JobStatus.FAILED)  # the files go; Redis's keys expire on their own
        except redis.RedisError:
            pass
        webhooks.notify(ctx, job.id)
        out.append(Repair(job.id, "failed: Redis unreachable", error))
    return out


def abort_lost_uploads(ctx: Context, *, now: datetime | None = None) -> list[uploads.Aborted]:
    """Abort the multipart uploads no worker will complete (S3; the file backend has none): those of
    jobs that ended or are gone, and those older than CLIPLINE_S3_ABORT_UPLOADS_AFTER_S."""

    def ended(job_id: str) -> bool:
        try:
            return ctx.store.get(job_id).job_status.is_final
        except JobNotFound:
            return True

    done = uploads.abort_lost(ctx.storage, ended, older_than_s=ctx.settings.s3_abort_uploads_after_s, now=now)
    for item in done:
        log.warning(
            "storage.upload_aborted", key=item.upload.key, upload_id=item.upload.upload_id, why=item.why
        )
    return done
