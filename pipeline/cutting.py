"""The three ways a slot gets its clip: from HLS segments, from a local copy, or a black placeholder.

Each writes to a temporary name, checks the frame count, renames into
``{work_dir}/{job_id}/clips/{index}.mp4`` and publishes it to the store
(``clip_objects.publish``: nothing to copy with the default file backend);
nothing is renamed once the job ended or left the view's attempt
(``fencing.check`` raises ``Superseded``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from . import clip_objects, fencing, ffmpeg_args, ffmpeg_build, files, prefetch
from .context import Context, JobView
from .errors import FFmpegFailed
from .frame_rule import Anchor, Pick, Run, output_times, plan, run_cuts
from .hls import select_segments
from .hls_inputs import HlsInputs
from .models import ClipOutcome, ClipRecord
from .probe import video_packets
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
) -> tuple[str, int, float, float]:
    """Run one encode to a temp name, verify its frame count, rename, publish. Returns (where the
    published clip is, frames, drift_ms, the encode's CPU ms)."""
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
        fencing.check(ctx, view)  # a clip of an attempt the job left never replaces the current one's
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    drift_ms = frames * 1000 / slot.fps - slot.duration_ms
    published = clip_objects.publish(ctx, view.job_id, slot.index, final)
    return published, frames, round(drift_ms, 3), done.cpu_ms or 0.0


def count_frames(ctx: Context, video: Path) -> int:
    out = run(ffmpeg_args.count_frames_argv(ctx.ffprobe, video), timeout_s=60).stdout.decode().strip()
    try:
        return int(out.splitlines()[0])
    except (ValueError, IndexError) as exc:
        raise FFmpegFailed(f"ffprobe could not count frames of {video.name}: {out!r}") from exc


def _cut(
    ctx: Context,
    view: JobView,
    index: int,
    inputs: list[ffmpeg_args.CutInput],
    runs: list[Run],
    picks: list[Pick],
    times: list[Fraction],
) -> tuple[str, int, float, float]:
    slot, req = view.slots[index], view.request
    cuts = run_cuts(picks, runs, slot.fps, times)
    inputs = ffmpeg_build.with_tone_mapping(ctx.ffmpeg, inputs)
    return _encode(
        ctx,
        view,
        slot,
        lambda out: ffmpeg_args.cut_argv(
            ctx.ffmpeg, inputs, cuts, out, frames=slot.frames, profile=ctx.profile(req)
        ),
    )


def cut_from_hls(ctx: Context, view: JobView, index: int) -> ClipRecord:
    """Fetch only the segments the window needs (shared within the job) and cut it by the frame rule."""
    req, slot = view.request, view.slots[index]
    clip = req.lines[index].clip
    started = time.monotonic()
    playlist = ctx.resolver.source_for(view.job_id, clip.video_id, clip.hls_url, req.output.rendition_height)
    need_ms = _needed_ms(view, index)
    segments = select_segments(playlist, clip.start_ms, clip.start_ms + need_ms)
    times = output_times(clip.start_ms, need_ms, slot.fps, slot.frames)
    # Inputs of this delivery only: a duplicate delivery of the same slot (in another thread or
    # process) works in its own directory, and neither removes what the other is reading.
    clips_dir = files.clip_path(ctx.settings, view.job_id, index).parent
    clips_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{index:04d}.inputs-", dir=clips_dir))
    source = HlsInputs(ctx, view.job_id, clip.video_id, playlist, scratch)
    try:
        planned = source.plan(segments, times)  # the segment cache counts the bytes it downloads
        prefetch.after_fetch(ctx, view, index)  # the next slots' segments come while this one encodes
        path, frames, drift, cpu_ms = _cut(
            ctx, view, index, planned.inputs, planned.runs, planned.picks, times
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ClipRecord(
        index=index,
        outcome=ClipOutcome.OK,
        path=str(path),
        video_id=clip.video_id,
        bytes_fetched=planned.bytes_fetched,
        segments_fetched=planned.fetched,
        segments_shared=planned.shared,
        extract_ms=round((time.monotonic() - started) * 1000, 1),
        frames=frames,
        drift_ms=drift,
        source_first_frame=planned.picks[0].source_frame,
        source_last_frame=planned.picks[-1].source_frame,
        cpu_ms=round(cpu_ms + planned.cpu_ms, 1),
        shown=[p.source_frame for p in planned.picks],
    )


LOCAL_DEMUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


def cut_from_local(ctx: Context, view: JobView, index: int) -> ClipRecord | None:
    """Cut the same window from ``{media_dir}/{video_id}.mp4|.mov|.mkv``; None when there is no copy.

    Source time 0 is the copy's first video frame; ``-ss`` seeks (through the container's index) to
    the keyframe at or before the window's first frame, and the frame rule does the rest.
    """
    req, slot = view.request, view.slots[index]
    clip = req.lines[index].clip
    source = files.find_local_copy(ctx.settings, clip.video_id)
    if source is None:
        return None
    started = time.monotonic()
    need_ms = _needed_ms(view, index)
    fmt = LOCAL_DEMUXERS[source.suffix]
    probe = video_packets(ctx.ffprobe, source, fmt, what=source.name)
    anchor = Anchor(0, Fraction(0), probe.first_key.pts, probe.time_base, False)
    times = output_times(clip.start_ms, need_ms, slot.fps, slot.frames)
    run = Run(0, probe.display_pts, probe.time_base, False, (0,) * len(probe.packets))  # one piece: one file
    picks = plan(times, [anchor], [run], probe.rate)
    first = min(p.pts for p in picks)
    key = max((k.pts for k in probe.packets if k.key and k.pts <= first), default=probe.first_key.pts)
    seek_s = float((key - probe.first_key.pts) * probe.time_base)
    inputs = [
        ffmpeg_args.CutInput(source, fmt, seek_s if seek_s > 0 else None, probe.interlaced, probe.colour)
    ]
    path, frames, drift, cpu_ms = _cut(ctx, view, index, inputs, [run], picks, times)
    return ClipRecord(
        index=index,
        outcome=ClipOutcome.LOCAL,
        path=str(path),
        video_id=clip.video_id,
        extract_ms=round((time.monotonic() - started) * 1000, 1),
        frames=frames,
        drift_ms=drift,
        source_first_frame=picks[0].source_frame,
        source_last_frame=picks[-1].source_frame,
        cpu_ms=round(cpu_ms + probe.cpu_ms, 1),
    )


def make_placeholder(ctx: Context, view: JobView, index: int) -> ClipRecord:
    """A black clip of the slot's exact frame count."""
    req, slot = view.request, view.slots[index]
    started = time.monotonic()
    path, frames, drift, cpu_ms = _encode(
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
        cpu_ms=cpu_ms,
    )
