"""The assemble stage: concatenate the clips in slot order, mux the song, write final.mp4, report.json
and poster.jpg (a frame from the middle) to the store.

Idempotent: a job already final is left alone; a Redis lock keeps two
deliveries from assembling at once; outputs are written to temporary names
and renamed, then published (write-then-publish), so a reader never sees a
torn file. With S3 the clips are downloaded in parallel to a local temp dir
first; a storage error is retried by the actor, and fails the job (naming it)
on the last attempt.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis
import redis.lock
import structlog

from . import audio, clip_objects, cutting, ffmpeg_args, files, job_end, keys, redact, results, webhooks
from .clip_stats import ClipStats, clip_stats
from .context import Context, JobView
from .errors import ClipLineError, FFmpegError, SourceError, infrastructure_unavailable
from .leases import LEASE_S, LeaseTimeout
from .models import ClipOutcome, ClipRecord, JobStatus
from .report import Report, build_report
from .stages import Stage
from .storage import StorageError, layout
from .subprocesses import run
from .timeline import total_frames

log = structlog.get_logger("clipline.assemble")


def _records(ctx: Context, view: JobView, *, with_redis: bool = True) -> dict[int, ClipRecord]:
    """Outcomes from Redis, filled in from the clips' sidecar files when Redis lost some (all of them from
    the sidecars without Redis)."""
    outcomes = ctx.completion.outcomes(view.job_id) if with_redis else {}
    got = {i: ClipRecord.from_json(d) for i, d in outcomes.items()}
    for slot in view.slots:
        if slot.index not in got:
            record = clip_objects.read_record(ctx, view.job_id, slot.index)
            if record is not None:
                got[slot.index] = record
    return got


@dataclass(frozen=True)
class Deferred:
    """The song is being prepared on a background thread (the plan stage's, or one this assembly started):
    assemble again in ``after_s`` seconds rather than wait for it in this thread, which other jobs'
    assemblies need."""

    after_s: float


#: How often a deferred assembly looks again for its song.
DEFER_S = 3.0


def _defer_for_song(ctx: Context, view: JobView) -> Deferred | None:
    """Deferred while the song is being prepared, or is to be (an attempt is started here), for as long as
    ``audio.SONG_ATTEMPTS`` downloads can last; None when it is ready or failed for good (the assembly
    then fails the job naming it)."""
    state = audio.song_state(ctx, view)
    if state in (audio.SongState.READY, audio.SongState.FAILED):
        return None
    attempt_s = ctx.settings.audio_deadline_s + 2 * LEASE_S + 60
    bound = math.ceil(audio.SONG_ATTEMPTS * attempt_s / DEFER_S)
    key = keys.job_song_deferrals(view.job_id)
    pipe = ctx.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, keys.JOB_KEY_TTL_S)
    if int(pipe.execute()[0]) > bound:  # never expected: the attempts end by their deadline
        return None
    if state == audio.SongState.TO_PREPARE:
        audio.prepare_in_background(ctx, view.job_id)  # busy threads: the next look starts it
    return Deferred(DEFER_S)


def assemble(ctx: Context, job_id: str, *, last_attempt: bool = True) -> JobStatus | Deferred | None:
    """Returns the final status, or None when there was nothing to do (already final or in progress), or
    Deferred while the song is being prepared elsewhere (the caller assembles again after it).

    Does nothing (None) while a slot of the job has no outcome: only a complete set is assembled.
    Raises SourceUnavailable when the song could not be fetched for now (or LeaseTimeout while the plan
    stage still prepares it), and StorageUnavailable when the store failed, unless this is the
    ``last_attempt`` (the actor retries them); on the last attempt they fail the job, naming the song.
    """
    s = ctx.settings
    lock = ctx.redis.lock(
        keys.job_lock(job_id, Stage.ASSEMBLE), timeout=s.assemble_timeout_s + 120, blocking=False
    )
    if not lock.acquire():
        log.info("assemble.skip", reason="another delivery holds the assembly lock")
        return None
    try:
        job = ctx.store.get(job_id)
        if JobStatus(job.status).is_final:
            log.info("assemble.skip", reason=f"job is already {job.status}")
            return None
        view = ctx.view(job_id)
        records = _records(ctx, view)
        waiting = [slot.index for slot in view.slots if slot.index not in records]
        if waiting:  # an early, duplicate or stale message: the clip that completes the set fires assembly
            log.info("assemble.skip", reason="slots without an outcome yet", slots=waiting[:20])
            return None
        if not ctx.store.advance(job_id, status=JobStatus.ASSEMBLING, progress=90, attempt=job.attempts):
            log.info("assemble.skip", reason="the job ended or was retried meanwhile")
            return None
        if deferred := _defer_for_song(ctx, view):  # the job's updated_at was touched just now: not stale
            log.info("assemble.deferred", reason="its song is prepared elsewhere", after_s=deferred.after_s)
            return deferred
        log.info("assemble.started", clips=len(view.slots), attempt=job.attempts)
        return _assemble(ctx, view, job.created_at, last_attempt, records, attempt=job.attempts)
    finally:
        _release(lock)


#: How long an assembly that failed for Redis (down for now) keeps trying to free its lock: its retry
#: would otherwise find it held and step aside, leaving the job to the reconciler.
LOCK_RELEASE_TRY_S = 10.0


def _release(lock: redis.lock.Lock) -> None:
    deadline = time.monotonic() + LOCK_RELEASE_TRY_S
    token = lock.local.token  # ``release`` forgets it before it asks Redis: a second try needs it
    while token is not None:
        try:
            lock.do_release(token)
            return
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                return  # the reconciler frees it: its holder's heartbeat is gone
            time.sleep(0.25)
        except Exception:  # noqa: BLE001 - an expired lock is not an error here
            return


def _assemble(
    ctx: Context,
    view: JobView,
    created_at: datetime,
    last_attempt: bool = True,
    records: dict[int, ClipRecord] | None = None,
    *,
    attempt: int,
) -> JobStatus:
    """Render and publish the job's attempt ``attempt``. Nothing is published, and no state written, once
    the job ended or moved to another attempt meanwhile (another assembler finished it, it was cancelled
    and retried): the outputs and report are the winner's alone (``_Superseded``)."""
    job_id = view.job_id
    started = time.monotonic()
    records = _records(ctx, view) if records is None else records
    expected = total_frames(view.request)
    stats = _stats(ctx, view, records)
    final = results.local_target(ctx, job_id, layout.FINAL)
    output_uri: str | None = None
    timing: dict[str, float | bool | str] = {"store": ctx.storage.description}
    missing = [i for i in range(len(view.slots)) if i not in records]
    failed = [r.index for r in records.values() if r.outcome == ClipOutcome.FAILED]
    error: str | None = None
    measured: int | None = None
    if missing or failed:
        error = (f"slots without a clip: {missing}" if missing else "") + (
            f"slots failed: {failed} ({records[failed[0]].reason})" if failed else ""
        )
        status = JobStatus.FAILED
    else:
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:  # the clips arrive while the song is prepared
                fetching = pool.submit(_fetch, ctx, view, timing)
                track = audio.for_assembly(ctx, view)
                clips = fetching.result()
            stats.bytes_fetched += audio.fetched_bytes(ctx, job_id)  # the plan stage's download, often
            fence = lambda: _still_ours(ctx, job_id, attempt)  # noqa: E731
            measured = _mux(ctx, view, clips, final, track, expected, fence)
            fence()
            output_uri = _publish(ctx, view, final, expected, timing)
            gaps = any(r.outcome != ClipOutcome.OK for r in records.values())
            status = JobStatus.COMPLETED_WITH_GAPS if gaps else JobStatus.COMPLETED
        except _Superseded:
            return _superseded(ctx, job_id, None)
        except (SourceError, LeaseTimeout) as exc:
            if exc.transient and not last_attempt:
                raise
            tried = "after its last retry: " if exc.transient else ""
            error, status = f"song {audio.describe(view)} could not be read {tried}{exc}", JobStatus.FAILED
        except StorageError as exc:
            if exc.transient and not last_attempt:
                raise
            measured, output_uri = None, None
            error, status = f"assembly failed: {type(exc).__name__}: {exc}", JobStatus.FAILED
        except (ClipLineError, OSError) as exc:
            error, status = f"assembly failed: {type(exc).__name__}: {exc}", JobStatus.FAILED
        except Exception as exc:  # noqa: BLE001 - a fault of ours: the job ends now, naming it, not when
            # the reconciler gives up on a job stuck in ASSEMBLING (no retry would change the outcome)
            if infrastructure_unavailable(exc) and not last_attempt:
                raise  # Redis or the database for now (a restart): the actor retries the assembly
            log.exception("assemble.internal_error")
            error, status = f"assembly failed: internal error {type(exc).__name__}: {exc}", JobStatus.FAILED
    stats.assembly_ms = round((time.monotonic() - started) * 1000, 1)
    report = build_report(
        view,
        records,
        status=status,
        output_path=output_uri,
        total_frames=expected,
        measured_frames=measured,
        clip_stats=stats,
        error=error,
    )
    report_uri: str | None = None
    try:
        _still_ours(ctx, job_id, attempt)
        report_uri = _publish_report(ctx, job_id, report)
    except _Superseded:
        return _superseded(ctx, job_id, status)
    except StorageError as exc:
        if exc.transient and not last_attempt:
            raise
        error, status = f"report could not be written: {type(exc).__name__}: {exc}", JobStatus.FAILED
    except OSError as exc:
        error, status = f"report could not be written: {exc}", JobStatus.FAILED
    render = {"clip_stats": stats.model_dump(mode="json"), "frames": measured, "expected_frames": expected}
    won = ctx.store.advance(
        job_id,
        status=status,
        error=error,
        metrics={"render": {**render, "poster": bool(timing.get("poster")), "storage": timing}},
        output_path=output_uri,
        report_path=report_uri,
        attempt=attempt,
    )
    if not won:  # another assembly finished the job first (its lock was lost with Redis): it counted
        return _superseded(ctx, job_id, status)
    job_end.finished(
        ctx,
        job_id,
        status,
        created_at,
        frames=measured,
        expected_frames=expected,
        assembly_ms=stats.assembly_ms,
        **stats.counts.model_dump(exclude={"total", "done"}),
    )
    cleanup(ctx, job_id, status)
    webhooks.notify(ctx, job_id)
    return status


class _Superseded(Exception):
    """The job ended, or another attempt of it began, while this assembly ran."""


def _still_ours(ctx: Context, job_id: str, attempt: int) -> None:
    """Raise ``_Superseded`` unless the job is still unfinished at ``attempt``: checked before anything is
    published, so a superseded assembler never replaces the winner's final.mp4 or report.json."""
    job = ctx.store.get(job_id)
    if job.job_status.is_final or job.attempts != attempt:
        raise _Superseded


def _superseded(ctx: Context, job_id: str, status: JobStatus | None) -> JobStatus:
    """Log and return the job's state as another assembly, a cancel or a retry left it; publish nothing."""
    job = ctx.store.get(job_id)
    log.warning(
        "assemble.superseded",
        status=status.value if status else None,
        job_status=job.status,
        job_attempt=job.attempts,
    )
    return JobStatus(job.status)


def _stats(ctx: Context, view: JobView, records: dict[int, ClipRecord]) -> ClipStats:
    return clip_stats(
        records.values(),
        peak_concurrency=ctx.completion.peak(view.job_id),
        configured_concurrency=ctx.live.clip_concurrency(),
        playlist_bytes=ctx.resolver.playlist_bytes(view.job_id, list(view.request.distinct_videos())),
        unclaimed_prefetch_bytes=ctx.segments.unclaimed_prefetch_bytes(view.job_id),
    )


def _publish_report(ctx: Context, job_id: str, report: Report) -> str:
    """report.json written under a temporary name, renamed, published; returns where it is."""
    path = results.local_target(ctx, job_id, layout.REPORT)
    files.write_json_atomic(path, redact.deep(report.model_dump(mode="json")))  # no signed URLs
    return results.publish(ctx, job_id, layout.REPORT, path)


def failure_report(ctx: Context, job_id: str, error: str, *, with_redis: bool = True) -> str | None:
    """report.json for a job failed without an assembly (the reconciler gave up on it): each slot's
    outcome so far, the lines without footage, the error. ``with_redis=False`` (Redis unreachable): the
    outcomes from the clips' sidecars, no live figures. Returns where it is, or None when it could not be
    made (logged: the job stays FAILED with its error, without a report)."""
    try:
        view = ctx.view(job_id)
        records = _records(ctx, view, with_redis=with_redis)
        stats = (
            _stats(ctx, view, records)
            if with_redis
            else clip_stats(records.values(), peak_concurrency=0, configured_concurrency=0)
        )
        report = build_report(
            view,
            records,
            status=JobStatus.FAILED,
            output_path=None,
            total_frames=total_frames(view.request),
            measured_frames=None,
            clip_stats=stats,
            error=error,
        )
        return _publish_report(ctx, job_id, report)
    except Exception as exc:  # noqa: BLE001 - a missing report must not keep the job from ending
        log.warning("report.not_written", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        return None


def _fetch(ctx: Context, view: JobView, timing: dict[str, float | bool | str]) -> list[Path]:
    """The clips as local files in slot order: in place with files, downloaded in parallel with S3."""
    t0 = time.monotonic()
    work = files.job_work_dir(ctx.settings, view.job_id)
    local = clip_objects.fetch(ctx, view.job_id, [slot.index for slot in view.slots], work / "fetched")
    timing["fetch_ms"] = round((time.monotonic() - t0) * 1000, 1)
    return [local[slot.index] for slot in view.slots]


def _publish(
    ctx: Context, view: JobView, final: Path, frames: int, timing: dict[str, float | bool | str]
) -> str:
    """Publish final.mp4 while the poster is made from it (and published); returns the video's URI."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        uploading = pool.submit(results.publish, ctx, view.job_id, layout.FINAL, final)
        timing["poster"] = _poster(ctx, view, final, frames)
        uri = uploading.result()
    timing["publish_ms"] = round((time.monotonic() - t0) * 1000, 1)
    return uri


def _mux(
    ctx: Context,
    view: JobView,
    clips: list[Path],
    final: Path,
    audio: Path | None,
    expected: int,
    fence: Callable[[], None],
) -> int:
    """The clips joined and the song muxed into ``final``; ``fence`` is called before it replaces what is
    there (with the file backend, the published final.mp4)."""
    work = files.job_work_dir(ctx.settings, view.job_id)
    work.mkdir(parents=True, exist_ok=True)
    concat = work / "concat.txt"
    concat.write_text(ffmpeg_args.concat_list_text(clips))
    tmp = files.temp_name(final)
    try:
        run(
            ffmpeg_args.assemble_argv(
                ctx.ffmpeg, concat, tmp, total_frames=expected, fps=view.request.output.fps, audio=audio
            ),
            timeout_s=ctx.settings.assemble_timeout_s,
            tag=view.job_id,
        )
        measured = cutting.count_frames(ctx, tmp)
        if measured != expected:
            raise ClipLineError(f"final video has {measured} frames, expected {expected}")
        fence()
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return measured


def _poster(ctx: Context, view: JobView, final: Path, frames: int) -> bool:
    """poster.jpg from the middle of the verified video, published; False (logged) when it failed."""
    poster = results.local_target(ctx, view.job_id, layout.POSTER)
    tmp = files.temp_name(poster)
    at_s = frames / 2 / view.request.output.fps
    try:
        run(ffmpeg_args.poster_argv(ctx.ffmpeg, final, tmp, at_s=at_s), timeout_s=60, tag=view.job_id)
        os.replace(tmp, poster)
    except (FFmpegError, OSError) as exc:  # a video without its poster is still the video
        log.warning("assemble.no_poster", error=f"{type(exc).__name__}: {exc}")
        return False
    finally:
        tmp.unlink(missing_ok=True)
    results.publish(ctx, view.job_id, layout.POSTER, poster)
    return True


#: What a finished job that may be retried keeps in its work dir: its clips (with their records) and the song.
KEPT_FOR_RETRY = ("clips", "audio/track.m4a")


def cleanup(ctx: Context, job_id: str, status: JobStatus) -> None:
    """Remove the job's temporary files; a job a retry could continue keeps its clips until retention.

    The local work dir is this host's scratch; with S3 the clips in the store go the same way.
    """
    work = files.job_work_dir(ctx.settings, job_id)
    if ctx.settings.keep_work:
        pass
    elif status in (JobStatus.COMPLETED_WITH_GAPS, JobStatus.FAILED):
        files.remove_all_but(work, KEPT_FOR_RETRY)
    else:
        files.remove_tree(work)
        try:
            ctx.storage.delete_prefix(layout.job_work(job_id))
        except StorageError as exc:  # retention removes them later
            log.warning("assemble.cleanup_failed", error=str(exc))
    remove_strays(ctx, job_id)
    ctx.completion.forget(job_id)


def remove_strays(ctx: Context, job_id: str) -> int:
    """Remove the temporary final.mp4 / report.json a dead assembler left in the job's output directory
    (file backend; S3 shows nothing half-written); returns how many. Run when the job ends, whoever
    ends it: a dead assembler whose lock went with a Redis restart is never repaired by the reconciler,
    the redelivered assembly simply takes the free lock."""
    out_dir = ctx.storage.local_path(layout.job_output(job_id))
    stray = sorted(out_dir.glob(".*.tmp*")) if out_dir is not None and out_dir.is_dir() else []
    for path in stray:
        path.unlink(missing_ok=True)
    return len(stray)

