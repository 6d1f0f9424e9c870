"""The job's sound track, prepared once so assembly is a stream copy of both tracks.

Encoding a 3-minute song to AAC costs seconds; done at assembly it would sit
on the critical path. The plan stage prepares it right after the fan-out,
while clips are being cut: an AAC song at least as long as the video is used
as it is (assembly copies and cuts it); anything else is encoded once to AAC,
padded with silence or cut to the video's exact length. Assembly calls
``prepare`` too, which reuses the prepared file when it is there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import fetch, ffmpeg_args, files, netguard
from .context import Context, JobView
from .errors import ClipLineError
from .subprocesses import run
from .timeline import total_frames


@dataclass(frozen=True)
class Track:
    path: Path
    fetched_bytes: int


def _source(ctx: Context, view: JobView) -> tuple[Path, int] | None:
    audio = view.request.audio
    if audio is None:
        return None
    if audio.path is not None:
        try:
            path = files.under(ctx.settings.media_dir, audio.path)
        except ValueError as exc:
            raise ClipLineError(f"audio.path {audio.path!r} escapes the media directory") from exc
        if not path.is_file():
            raise ClipLineError(f"audio.path {audio.path!r} not found under {ctx.settings.media_dir}")
        return path, 0
    assert audio.url is not None
    dest = files.job_work_dir(ctx.settings, view.job_id) / "audio" / "source"
    if dest.exists():
        return dest, 0
    nbytes = fetch.download(
        audio.url, dest, policy=netguard.Policy.of(ctx.settings), limits=fetch.audio_limits(ctx.settings)
    )
    ctx.observer.bytes_fetched(nbytes)
    return dest, nbytes


def _probe(ctx: Context, path: Path) -> tuple[str | None, float]:
    """(codec of the first audio stream, duration in seconds) of a media file."""
    out = run(ffmpeg_args.probe_audio_argv(ctx.ffprobe, path), timeout_s=60).stdout
    data = json.loads(out or b"{}")
    streams = data.get("streams") or []
    if not streams:
        raise ClipLineError(f"the song {path.name} has no audio stream")
    return streams[0].get("codec_name"), float(data.get("format", {}).get("duration") or 0)


def prepare(ctx: Context, view: JobView) -> Track | None:
    """The track to mux (stream copy), or None for a silent video. Raises Source*/ClipLineError."""
    prepared = files.job_work_dir(ctx.settings, view.job_id) / "audio" / "track.m4a"
    if prepared.exists():
        return Track(prepared, 0)
    got = _source(ctx, view)
    if got is None:
        return None
    source, nbytes = got
    length_s = total_frames(view.request) / view.request.output.fps
    codec, duration_s = _probe(ctx, source)
    if codec == "aac" and duration_s >= length_s and source.suffix.lower() in (".m4a", ".mp4", ".aac", ""):
        if source.suffix == "":  # downloaded: name it so the muxer sees an MP4/M4A
            os.replace(source, prepared)
            return Track(prepared, nbytes)
        return Track(source, nbytes)
    prepared.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_name(prepared)
    try:
        run(
            ffmpeg_args.song_argv(ctx.ffmpeg, source, tmp, length_s=length_s),
            timeout_s=ctx.settings.assemble_timeout_s,
            tag=view.job_id,
        )
        os.replace(tmp, prepared)
    finally:
        tmp.unlink(missing_ok=True)
    return Track(prepared, nbytes)
