"""The assemble stage: concatenate the clips in slot order, mux the song, write final.mp4 and report.json.

Idempotent: a job already final is left alone; a Redis lock keeps two
deliveries from assembling at once; outputs are written to temporary names
and renamed, so a reader never sees a torn file.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from . import audio, cutting, ffmpeg_args, files, keys, webhooks
from .clip_stats import clip_stats
from .context import Context, JobView
from .errors import ClipLineError, SourceError
from .models import ClipOutcome, ClipRecord, JobStatus
from .report import build_report
from .stages import Stage
from .subprocesses import run
from .timeline import total_frames

log = structlog.get_logger("clipline.assemble")


def _records(ctx: Context, view: JobView) -> dict[int, ClipRecord]:
    """Outcomes from Redis, filled in from the clips' sidecar files when Redis lost some."""
    got = {i: ClipRecord.from_json(d) for i, d in ctx.completion.outcomes(view.job_id).items()}
    for slot in view.slots:
        if slot.index not in got:
            data = files.read_json(files.clip_record_path(ctx.settings, view.job_id, slot.index))
            if data is not None:
                got[slot.index] = ClipRecord.from_json(data)
    return got


def assemble(ctx: Context, job_id: str) -> JobStatus | None:
    """Returns the final status, or None when there was nothing to do (already final or in progress).

    Raises SourceUnavailable when the song could not be fetched for now (the actor retries).
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
        log.info("assemble.started", clips=len(view.slots))
        ctx.store.advance(job_id, status=JobStatus.ASSEMBLING, progress=90)
        return _assemble(ctx, view, job.created_at)
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - an expired lock is not an error here
            pass


def _assemble(ctx: Context, view: JobView, created_at: datetime) -> JobStatus:
    s, job_id = ctx.settings, view.job_id
    started = time.monotonic()
    records = _records(ctx, view)
    expected = total_frames(view.request)
    stats = clip_stats(
        records.values(),
        peak_concurrency=ctx.completion.peak(job_id),
        configured_concurrency=ctx.live.clip_concurrency(),
        playlist_bytes=ctx.resolver.playlist_bytes(job_id, list(view.request.distinct_videos())),
    )
    out_dir = files.job_output_dir(s, job_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    final, report_path = out_dir / "final.mp4", out_dir / "report.json"
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
            track = audio.prepare(ctx, view)
            stats.bytes_fetched += track.fetched_bytes if track else 0
            measured = _mux(ctx, view, records, final, track.path if track else None, expected)
            gaps = any(r.outcome != ClipOutcome.OK for r in records.values())
            status = JobStatus.COMPLETED_WITH_GAPS if gaps else JobStatus.COMPLETED
        except SourceError as exc:
            if exc.transient:
                raise
            error, status = f"song could not be read: {exc}", JobStatus.FAILED
        except (ClipLineError, OSError) as exc:
            error, status = f"assembly failed: {type(exc).__name__}: {exc}", JobStatus.FAILED
    stats.assembly_ms = round((time.monotonic() - started) * 1000, 1)
    report = build_report(
        view,
        records,
        status=status,
        output_path=str(final) if measured else None,
        total_frames=expected,
        measured_frames=measured,
        clip_stats=stats,
        error=error,
    )
    try:
        files.write_json_atomic(report_path, report.model_dump(mode="json"))
    except OSError as exc:
        error, status = f"report could not be written: {exc}", JobStatus.FAILED
    frames = {"frames": measured, "expected_frames": expected}
    won = ctx.store.advance(
        job_id,
        status=status,
        error=error,
        metrics={"render": {"clip_stats": stats.model_dump(mode="json"), **frames}},
        output_path=str(final) if measured else None,
        report_path=str(report_path) if report_path.exists() else None,
    )
    if not won:  # another assembly finished the job first (its lock was lost with Redis): it counted
        log.warning("assemble.superseded", status=status.value)
        return JobStatus(ctx.store.get(job_id).status)
    duration_s = (datetime.now(UTC) - _aware(created_at)).total_seconds()
    ctx.observer.job_finished(status.value, duration_s)
    log.info(
        "job.finished",
        status=status.value,
        frames=measured,
        expected_frames=expected,
        duration_s=round(duration_s, 3),
        assembly_ms=stats.assembly_ms,
        **stats.counts.model_dump(exclude={"total", "done"}),
    )
    cleanup(ctx, job_id, status)
    webhooks.notify(ctx, job_id)
    return status


def _mux(
    ctx: Context,
    view: JobView,
    records: dict[int, ClipRecord],
    final: Path,
    audio: Path | None,
    expected: int,
) -> int:
    work = files.job_work_dir(ctx.settings, view.job_id)
    concat = work / "concat.txt"
    clips = [Path(str(records[slot.index].path)) for slot in view.slots]
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
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return measured


#: What a finished job that may be retried keeps in its work dir: its clips (with their records) and the song.
KEPT_FOR_RETRY = ("clips", "audio/track.m4a")


def cleanup(ctx: Context, job_id: str, status: JobStatus) -> None:
    """Remove the job's temporary files; a job a retry could continue keeps its clips until retention."""
    work = files.job_work_dir(ctx.settings, job_id)
    if ctx.settings.keep_work:
        pass
    elif status in (JobStatus.COMPLETED_WITH_GAPS, JobStatus.FAILED):
        files.remove_all_but(work, KEPT_FOR_RETRY)
    else:
        files.remove_tree(work)
    ctx.completion.forget(job_id)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
