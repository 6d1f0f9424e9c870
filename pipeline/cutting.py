"""The three ways a slot gets its clip: from HLS segments, from a local copy, or a black placeholder.

Each writes to a temporary name, checks the frame count with ffprobe, and
renames into ``{work_dir}/{job_id}/clips/{index}.mp4``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from . import ffmpeg_args, files
from .context import Context, JobView
from .errors import FFmpegFailed
from .hls import select_segments
from .models import ClipOutcome, ClipRecord
from .subprocesses import run
from .timeline import Slot


def _needed_ms(view: JobView, index: int) -> int:
    """How much of the source window the slot can show: the window, or less when the slot is shorter."""
    slot = view.slots[index]
    clip = view.request.lines[index].clip
    slot_ms = -(-slot.frames * 1000 // slot.fps)  # ceil
    return min(clip.duration_ms, slot_ms)


def _encode(
    ctx: Context, view: JobView, slot: Slot, argv_for: Callable[[Path], list[str]]
) -> tuple[Path, int, float]:
    """Run one encode to a temp name, verify its frame count, rename. Returns (path, frames, drift_ms)."""
    final = files.clip_path(ctx.settings, view.job_id, slot.index)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_name(final)
    try:
        done = run(argv_for(tmp), timeout_s=ctx.settings.ffmpeg_timeout_s, tag=view.job_id)
        frames = ffmpeg_args.frames_from_progress(done.stdout)
        if frames is None:  # no progress report: ask ffprobe
            frames = count_frames(ctx, tmp)
        if frames != slot.frames:
            raise FFmpegFailed(f"clip {slot.index} came out with {frames} frames, expected {slot.frames}")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    drift_ms = frames * 1000 / slot.fps - slot.duration_ms
    return final, frames, round(drift_ms, 3)


def count_frames(ctx: Context, video: Path) -> int:
    out = run(ffmpeg_args.count_frames_argv(ctx.ffprobe, video), timeout_s=60).stdout.decode().strip()
    try:
        return int(out.splitlines()[0])
    except (ValueError, IndexError) as exc:
        raise FFmpegFailed(f"ffprobe could not count frames of {video.name}: {out!r}") from exc


def cut_from_hls(ctx: Context, view: JobView, index: int) -> ClipRecord:
    """Fetch only the segments overlapping the window (shared within the job) and cut the clip."""
    req, slot = view.request, view.slots[index]
    clip = req.lines[index].clip
    started = time.monotonic()
    playlist = ctx.resolver.source_for(view.job_id, clip.video_id, clip.hls_url, req.output.height)
    need_ms = _needed_ms(view, index)
    segments = select_segments(playlist, clip.start_ms, clip.start_ms + need_ms)
    got = ctx.segments.fetch(view.job_id, clip.video_id, playlist, segments)
    ctx.observer.bytes_fetched(got.bytes_fetched)
    offset_s = max(0.0, clip.start_ms / 1000 - segments[0].start_s)
    sources = got.paths  # with fMP4 the init segment comes first: together they read as one stream
    path, frames, drift = _encode(
        ctx,
        view,
        slot,
        lambda out: ffmpeg_args.cut_argv(
            ctx.ffmpeg,
            sources,
            out,
            offset_s=offset_s,
            window_s=need_ms / 1000,
            frames=slot.frames,
            profile=ctx.profile(req),
        ),
    )
    return ClipRecord(
        index=index,
        outcome=ClipOutcome.OK,
        path=str(path),
        video_id=clip.video_id,
        bytes_fetched=got.bytes_fetched,
        segments_fetched=got.fetched,
        segments_shared=got.shared,
        extract_ms=round((time.monotonic() - started) * 1000, 1),
        frames=frames,
        drift_ms=drift,
    )


def cut_from_local(ctx: Context, view: JobView, index: int) -> ClipRecord | None:
    """Cut the same window from ``{media_dir}/{video_id}.mp4|.mov|.mkv``; None when there is no copy."""
    req, slot = view.request, view.slots[index]
    clip = req.lines[index].clip
    source = files.find_local_copy(ctx.settings, clip.video_id)
    if source is None:
        return None
    started = time.monotonic()
    need_ms = _needed_ms(view, index)
    path, frames, drift = _encode(
        ctx,
        view,
        slot,
        lambda out: ffmpeg_args.cut_argv(
            ctx.ffmpeg,
            [source],
            out,
            offset_s=clip.start_ms / 1000,
            window_s=need_ms / 1000,
            frames=slot.frames,
            profile=ctx.profile(req),
            indexed=True,
        ),
    )
    return ClipRecord(
        index=index,
        outcome=ClipOutcome.LOCAL,
        path=str(path),
        video_id=clip.video_id,
        extract_ms=round((time.monotonic() - started) * 1000, 1),
        frames=frames,
        drift_ms=drift,
    )


def make_placeholder(ctx: Context, view: JobView, index: int) -> ClipRecord:
    """A black clip of the slot's exact frame count."""
    req, slot = view.request, view.slots[index]
    started = time.monotonic()
    path, frames, drift = _encode(
        ctx,
        view,
        slot,
        lambda out: ffmpeg_args.placeholder_argv(
            ctx.ffmpeg, out, frames=slot.frames, profile=ctx.profile(req)
        ),
    )
    return ClipRecord(
        index=index,
        outcome=ClipOutcome.PLACEHOLDER,
        path=str(path),
        video_id=req.lines[index].clip.video_id,
        extract_ms=round((time.monotonic() - started) * 1000, 1),
        frames=frames,
        drift_ms=drift,
    )
