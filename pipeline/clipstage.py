"""The clip and fallback stages as plain functions that return what should happen next.

``run_clip`` returns Done (outcome recorded; ``fire`` tells the one caller that
must enqueue assembly), Retry (a transient error; the actor re-raises it so the
broker retries with backoff), Fallback (permanent error or retries exhausted)
or Skipped (the job is cancelled or finished). ``run_fallback`` always ends in
Done or Skipped: every clip reaches a final outcome, so the job always ends.

Both are fenced by the job's attempt (``pipeline.fencing``): a clip of an attempt
that the job left (cancelled and retried) or that ended while it was cut records
nothing, writes no clip file, sidecar or error line, sends no fallback, and is
logged once as ``clip.superseded``.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import structlog

from . import clip_objects, clip_reuse, cutting, fencing, keys, leases
from .context import Context, JobView
from .errors import ClipLineError, FFmpegMissing, Superseded, is_transient
from .logs import clip_event
from .models import ClipOutcome, ClipRecord, JobStatus
from .storage import StorageError

log = structlog.get_logger("clipline.clip")

#: Progress shares: planning up to 5, clips 5..90, assembly 90..100.
PROGRESS_CLIPS_FROM, PROGRESS_CLIPS_TO = 5, 90


@dataclass(frozen=True)
class Done:
    record: ClipRecord
    fire: bool
    added: bool = True  # False: a duplicate delivery; the outcome was already recorded


@dataclass(frozen=True)
class Retry:
    error: Exception
    job_attempt: int | None = None  # the attempt the retried message is for (the clip's own)


@dataclass(frozen=True)
class Fallback:
    reason: str
    job_attempt: int | None = None  # the attempt the fallback message is for (the clip's own)


@dataclass(frozen=True)
class Skipped:
    why: str


Step = Done | Retry | Fallback | Skipped


ANOTHER_DELIVERY = "another delivery of this slot is at work on it"


class SlotOutOfRange(ClipLineError):
    """A clip message names a slot the job does not have (or an index that is not an integer): it can
    never be processed, so it is dead-lettered, never retried."""


def _check_index(view: JobView, index: object) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(view.slots):
        raise SlotOutOfRange(f"job {view.job_id} has slots 0..{len(view.slots) - 1}; got index {index!r}")


def _slot_held(ctx: Context, job_id: str, index: int) -> AbstractContextManager[bool]:
    """Hold the slot's leased lock for the block (True), or say another delivery holds it (False).

    One delivery of a slot cuts and publishes at a time: a duplicate finds the lock held and steps
    aside (the holder is alive, since its lease is renewed, and will record the outcome or retry its
    own message), or finds the outcome recorded once it gets the lock. So a losing duplicate never
    writes over the winner's clip file or sidecar.
    """
    return leases.held_if_free(ctx.redis, keys.job_lock(job_id, f"clip-{index}"))


def _skip_reason(ctx: Context, view: JobView, index: int) -> tuple[str | None, JobStatus | None]:
    """(why this clip need not run, or None; the job's status when it was read). Raises ``Superseded``
    for a message of an attempt the job has left."""
    if ctx.completion.has(view.job_id, index):
        _announce_recorded(ctx, view, index)
        return "already recorded", None
    job = ctx.store.get(view.job_id)
    status = job.job_status
    if status.is_final:
        if status == JobStatus.CANCELLED:  # sweep up what a clip still running at the cancel left behind
            clip_objects.remove_job(ctx, view.job_id)
        return f"job is {status.value}", status
    fencing.check(ctx, view, job)
    return None, status


def _announce_recorded(ctx: Context, view: JobView, index: int) -> None:
    """The slot's outcome is recorded: if the delivery that recorded it died before logging it (killed
    between the Redis record and its final clip event: its message comes back), log and count it now,
    once (``announce``'s marker). Called with the slot's lock held, so never beside that delivery."""
    if clip_objects.was_logged(ctx, view.job_id, index):
        return
    raw = ctx.completion.outcome(view.job_id, index)
    if raw is not None:
        announce(ctx, view, ClipRecord.from_json(raw))


def _fence(ctx: Context, view: JobView) -> None:
    """After the work, before anything of it is kept: raise ``Superseded`` when the job ended or left the
    view's attempt meanwhile (a cancelled job's files, which a clip still running may have written after
    the cancel removed them, are swept)."""
    job = ctx.store.get(view.job_id)
    if job.job_status == JobStatus.CANCELLED:
        clip_objects.remove_job(ctx, view.job_id)
    fencing.check(ctx, view, job)


def _superseded(view: JobView, index: int, stage: str, exc: Superseded) -> Skipped:
    """Log, once per delivery, that what the clip made is dropped (as ``assemble.superseded`` does)."""
    log.warning(
        "clip.superseded",
        job_id=view.job_id,
        clip_task_id=f"{view.job_id}:{index}",
        index=index,
        stage=stage,
        attempt=exc.attempt,
        job_attempt=exc.job_attempt,
        job_status=exc.job_status,
    )
    return Skipped(f"superseded: {exc}")


def _sidecar(ctx: Context, job_id: str, index: int) -> ClipRecord | None:
    """The outcome a clip wrote beside itself when it finished (None: it never finished)."""
    return clip_objects.read_record(ctx, job_id, index)


def _recover(ctx: Context, view: JobView, index: int) -> Done | None:
    """A clip finished earlier whose Redis record was lost (restart) is recorded again from its sidecar."""
    try:
        record = _sidecar(ctx, view.job_id, index)
        if record is None or (record.path and not clip_objects.exists(ctx, view.job_id, index)):
            return None
    except StorageError:
        return None  # the store fails: cut again; publishing meets the error where it is retried
    return finish(ctx, view, record)


def finish(
    ctx: Context, view: JobView, record: ClipRecord, parallel_slot: int | None = None, *, fenced: bool = False
) -> Done:
    """Persist the outcome (sidecar, then the atomic Redis record), move progress, log the final status.

    Only the delivery whose record counted logs and counts it: a duplicate changes nothing. Raises
    ``Superseded`` (nothing written) when the job ended or left the view's attempt; ``fenced``: the
    caller checked that just now, with nothing written since (the job's record is not read again).
    """
    if not fenced:
        _fence(ctx, view)
    try:
        clip_objects.write_record(ctx, view.job_id, record)
    except StorageError as exc:  # Redis holds the outcome; only if Redis lost it too is the clip cut again
        log.warning("clip.sidecar_failed", job_id=view.job_id, index=record.index, error=str(exc))
    total = len(view.slots)
    rec = ctx.completion.record(view.job_id, record.index, total, record.to_json())
    if rec.added:
        span = PROGRESS_CLIPS_TO - PROGRESS_CLIPS_FROM
        progress = PROGRESS_CLIPS_FROM + span * rec.done // total
        ctx.store.advance(view.job_id, progress=progress, attempt=view.attempt)
        announce(ctx, view, record, parallel_slot)
    fire = rec.fire
    if rec.state_lost and JobStatus(ctx.store.get(view.job_id).status) == JobStatus.EXTRACTING:
        restored = restore_from_disk(ctx, view)
        log.warning(
            "clip.state_restored",
            job_id=view.job_id,
            restored=restored.restored,
            without_outcome=len(restored.missing),
            reason="the job's Redis state was lost (restart?): outcomes recorded again from their sidecars",
        )
        fire = fire or restored.fired
    return Done(record, fire, rec.added)


@dataclass(frozen=True)
class Restored:
    restored: int  # outcomes recorded again from their sidecars
    missing: list[int]  # slots with no outcome in Redis or on disk
    fired: bool  # a restored outcome completed the set: the caller enqueues assembly


def restore_from_disk(ctx: Context, view: JobView) -> Restored:
    """Record again every outcome whose sidecar is on disk but which Redis lost (idempotent).

    Marks the job planned again first, so the clips that finish next count as usual.
    """
    job_id, total = view.job_id, len(view.slots)
    ctx.completion.mark_planned(job_id, sent=True)  # the slots without a message are the reconciler's
    recorded = set(ctx.completion.outcomes(job_id))
    restored, missing, fired = 0, [], False
    for slot in view.slots:
        if slot.index in recorded:
            continue
        record = _sidecar(ctx, job_id, slot.index)
        if record is None:
            missing.append(slot.index)
            continue
        rec = ctx.completion.record(job_id, slot.index, total, record.to_json())
        if rec.added:  # its clip may have died between its sidecar and its log line: log it now, once
            announce(ctx, view, record)
        restored += 1
        fired = fired or rec.fire
    return Restored(restored, missing, fired)


def announce(ctx: Context, view: JobView, record: ClipRecord, parallel_slot: int | None = None) -> None:
    """Log and count the clip's final status, once per slot and attempt.

    A marker beside the clip remembers it, so a record restored from its
    sidecar (after Redis lost it) is logged only if it never was.
    """
    if clip_objects.was_logged(ctx, view.job_id, record.index):
        return
    ctx.observer.clip_outcome(record.outcome, record.extract_ms)
    extra: dict[str, Any] = {}
    if record.outcome == ClipOutcome.OK:
        extra["bytes_fetched"] = record.bytes_fetched
    reuse = {"reused_from": record.reused_from, "reuse": record.reuse, "cache": record.cache}
    extra.update({k: v for k, v in reuse.items() if v is not None})
    clip_event(
        log,
        job_id=view.job_id,
        index=record.index,
        status=record.outcome.public_name,
        parallel_slot=parallel_slot,
        attempt=record.attempts,
        video_id=record.video_id,
        duration_ms=record.extract_ms,
        reason=record.reason,
        **extra,
    )
    clip_objects.mark_logged(ctx, view.job_id, record.index)


def run_clip(
    ctx: Context,
    job_id: str,
    index: int,
    *,
    attempt: int,
    max_attempts: int,
    queue_wait_ms: float | None = None,
    parallel_slot: int | None = None,
    job_attempt: int | None = None,
) -> Step:
    """Cut slot ``index`` of ``job_id`` from its HLS source for the job's attempt ``job_attempt`` (None:
    the attempt the job is at now); say what the actor must do next.

    Returns:
        ``Done`` once the outcome is recorded (``fire``: this call completed the job's set of
        outcomes, so the caller enqueues assembly; ``added`` False: a duplicate delivery, nothing
        changed), ``Retry`` for a transient failure while ``attempt < max_attempts`` (the caller
        re-raises so the broker retries with backoff), ``Fallback`` with the reason for a permanent
        failure or exhausted retries (the caller sends the fallback message, for the same attempt),
        ``Skipped`` when the slot needs nothing (already recorded, the job cancelled or final) or the
        job ended or left the attempt while it was cut (superseded: nothing of it is kept). A
        redelivered clip whose file and sidecar exist is recorded again from them instead of being
        cut twice.

    Raises only what it cannot decide on: a job id or index that is not in the store
    (``JobNotFound``, ``IndexError``), or a broken database or Redis (their own errors).
    """
    view = ctx.view(job_id)
    _check_index(view, index)
    with _slot_held(ctx, job_id, index) as held:
        if not held:
            return Skipped(ANOTHER_DELIVERY)
        view = fencing.bind(ctx, view, job_attempt)
        try:
            return _run_clip(ctx, view, index, attempt, max_attempts, queue_wait_ms, parallel_slot)
        except Superseded as exc:
            return _superseded(view, index, "clip", exc)


def _run_clip(
    ctx: Context,
    view: JobView,
    index: int,
    attempt: int,
    max_attempts: int,
    queue_wait_ms: float | None,
    parallel_slot: int | None,
) -> Step:
    job_id = view.job_id
    clip = view.request.lines[index].clip
    why, status = _skip_reason(ctx, view, index)
    if why:
        return Skipped(why)
    recovered = _recover(ctx, view, index)
    if recovered is not None:
        return recovered
    event: dict[str, Any] = {
        "job_id": job_id,
        "index": index,
        "parallel_slot": parallel_slot,
        "attempt": attempt,
        "video_id": clip.video_id,
    }
    clip_event(log, status="started", **event)
    if status == JobStatus.PLANNING:  # the first clips can start before planning has finished
        planning = frozenset({JobStatus.PLANNING})
        ctx.store.advance(job_id, status=JobStatus.EXTRACTING, only_from=planning, attempt=view.attempt)
    attempts = ctx.completion.note_attempt(job_id, index)
    ctx.observer.clip_started(queue_wait_ms if attempt == 1 else None)
    ctx.completion.enter(job_id)
    started = time.monotonic()
    try:
        record = clip_reuse.cut_once(ctx, view, index)  # cut, or reuse a twin's clip or a cached one
    except FFmpegMissing as exc:
        return _failed(ctx, view, index, attempts, f"ffmpeg is missing: {exc}", parallel_slot)
    except Exception as exc:  # noqa: BLE001 - every failure ends in retry or fallback, never a lost clip
        # The job ended (cancelled: its ffmpeg was stopped on purpose) or left this attempt while this clip
        # was cut: raises Superseded; its error is no attempt's, and nothing is retried or sent to fallback
        _fence(ctx, view)
        if ctx.completion.has(job_id, index):
            return Skipped("already recorded")
        error = f"{type(exc).__name__}: {exc}"
        ctx.completion.note_error(job_id, index, error)
        elapsed = (time.monotonic() - started) * 1000
        if is_transient(exc) and attempt < max_attempts:
            ctx.observer.retry(type(exc).__name__)
            clip_event(log, status="retrying", duration_ms=elapsed, error=error, **event)
            return Retry(exc, view.attempt)
        if not isinstance(exc, ClipLineError):
            log.exception("clip.internal_error", clip_task_id=f"{job_id}:{index}")
        prefix = f"retries exhausted after {attempt} attempts: " if is_transient(exc) else ""
        return Fallback(prefix + error, view.attempt)
    finally:
        ctx.completion.leave(job_id)
        ctx.observer.clip_finished()
    _fence(ctx, view)  # cancelled (its files swept) or retried while this clip was cut: nothing is kept
    if ctx.completion.has(job_id, index):
        return Skipped("already recorded")
    record.attempts, record.queue_wait_ms = attempts, queue_wait_ms
    return finish(ctx, view, record, parallel_slot, fenced=True)


def run_fallback(
    ctx: Context,
    job_id: str,
    index: int,
    reason: str,
    *,
    parallel_slot: int | None = None,
    job_attempt: int | None = None,
) -> Step:
    """Give slot ``index`` a clip after its source failed: the local copy, else a black placeholder; for
    the job's attempt ``job_attempt`` (None: the attempt the job is at now).

    What is tried follows the live fallback policy (``fallback_local``, ``fallback_placeholder``);
    ``reason`` (why the HLS cut failed) is kept in the record with what was tried.

    Returns:
        ``Done`` (outcome ``local``, ``placeholder``, or ``failed`` when even a placeholder could
        not be made or is disabled: the job will end FAILED), or ``Skipped`` when the slot needs
        nothing or the attempt was superseded. Never ``Retry``: every slot reaches an outcome, so
        every job ends.
    """
    view = ctx.view(job_id)
    _check_index(view, index)
    with _slot_held(ctx, job_id, index) as held:
        if not held:
            return Skipped(ANOTHER_DELIVERY)
        view = fencing.bind(ctx, view, job_attempt)
        try:
            return _run_fallback(ctx, view, index, reason, parallel_slot)
        except Superseded as exc:
            return _superseded(view, index, "fallback", exc)


def _run_fallback(ctx: Context, view: JobView, index: int, reason: str, parallel_slot: int | None) -> Step:
    job_id = view.job_id
    clip = view.request.lines[index].clip
    why, _ = _skip_reason(ctx, view, index)
    if why:
        return Skipped(why)
    recovered = _recover(ctx, view, index)
    if recovered is not None:
        return recovered
    attempts, last_error = ctx.completion.attempts(job_id, index)
    s = ctx.settings
    policy = ctx.live.refresh()
    notes = [reason]
    record: ClipRecord | None = None
    try:
        if policy["fallback_local"]:
            try:
                record = cutting.cut_from_local(ctx, view, index)
                if record is None:
                    notes.append(f"no local copy of {clip.video_id} in {s.media_dir}")
            except (FFmpegMissing, Superseded):
                raise
            except Exception as exc:  # noqa: BLE001 - a bad local copy falls through to the placeholder
                notes.append(f"local copy failed: {type(exc).__name__}: {exc}")
        else:
            notes.append("local fallback disabled")
        if record is None:
            if not policy["fallback_placeholder"]:
                return _failed(
                    ctx,
                    view,
                    index,
                    attempts,
                    "; ".join([*notes, "placeholder disabled"]),
                    parallel_slot,
                    last_error,
                )
            record = cutting.make_placeholder(ctx, view, index)
    except Superseded:
        raise
    except Exception as exc:  # noqa: BLE001 - not even a placeholder: the slot fails, the job will fail
        return _failed(
            ctx,
            view,
            index,
            attempts,
            "; ".join([*notes, f"{type(exc).__name__}: {exc}"]),
            parallel_slot,
            last_error,
        )
    record.attempts, record.last_error, record.reason = attempts, last_error or reason, "; ".join(notes)
    return finish(ctx, view, record, parallel_slot)


def _failed(
    ctx: Context,
    view: JobView,
    index: int,
    attempts: int,
    reason: str,
    parallel_slot: int | None,
    last_error: str | None = None,
) -> Done:
    clip = view.request.lines[index].clip
    record = ClipRecord(
        index=index,
        outcome=ClipOutcome.FAILED,
        video_id=clip.video_id,
        attempts=attempts,
        last_error=last_error or reason,
        reason=reason,
    )
    _fence(ctx, view)  # an attempt the job left adds no line to its error log (the write is fenced too)
    line = f"clip {index} ({clip.video_id}) failed: {reason}"
    ctx.store.advance(view.job_id, error=line, attempt=view.attempt)
    return finish(ctx, view, record, parallel_slot)
