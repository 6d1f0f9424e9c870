"""The job's sound track, prepared once so assembly is a stream copy of both tracks.

Encoding a 3-minute song to AAC costs seconds; done at assembly it would sit
on the critical path. The plan stage prepares it right after the fan-out,
while clips are being cut: an AAC song whose audio stream (its own length, not
its container's, which spans every track) is at least as long as the video is
used as it is (assembly copies and cuts it); anything else is encoded once to
AAC, padded with silence or cut to the video's exact length. Assembly calls
``prepare`` too, which reuses the prepared file when it is there; the two never
prepare at the same time (a leased lock per job's song).

ffmpeg never decides what to open: the song is probed by format first with
only single-file audio demuxers allowed (``ffmpeg_args.SONG_DEMUXERS``) and
only the local file; a playlist (HLS, DASH), a concat list, or a file without
an audio stream is refused (``SourceInvalid``: the job fails, naming it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from . import fetch, ffmpeg_args, files, keys, leases, netguard, redact
from .context import Context, JobView
from .errors import ClipLineError, FFmpegFailed, SourceInvalid
from .subprocesses import run
from .timeline import total_frames

log = structlog.get_logger("clipline.audio")


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


#: How the first bytes of a file that opens other files begin: refused before ffprobe sees it.
_LISTS = ((b"#EXTM3U", "an HLS playlist"), (b"<MPD", "a DASH manifest"), (b"ffconcat", "a concat list"))
#: How long the assembler waits for the planner still preparing the same song (and the other way round).
SONG_LOCK_WAIT_S = 120.0


@dataclass(frozen=True)
class Song:
    """What ffprobe found in the song: the demuxer that reads it, its audio codec and the audio stream's
    duration (the container's when the stream has none)."""

    fmt: str
    codec: str | None
    duration_s: float
    whole: bool = True  # False: its index lists packets the file does not hold (cut short)


def _what_list(path: Path) -> str | None:
    """'an HLS playlist' (...) when the file starts like a playlist or list, else None."""
    with path.open("rb") as f:
        head = f.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<?xml") and b"<MPD" in head:
        return "a DASH manifest"
    return next((what for magic, what in _LISTS if head.startswith(magic)), None)


def probe(ctx: Context, path: Path, what: str) -> Song:
    """Probe the song by format first: only a single-file audio container (``SONG_DEMUXERS``) reading the
    local file. Raises SourceInvalid for a playlist, a list, anything else, or a file with no audio."""
    listed = _what_list(path)
    if listed:
        raise SourceInvalid(f"the song {what} is {listed}, not an audio file; refused")
    done = run(ffmpeg_args.probe_song_argv(ctx.ffprobe, path), timeout_s=60, check=False)
    if done.returncode != 0:
        why = done.stderr.strip()[-300:] or f"ffprobe exit {done.returncode}"
        raise SourceInvalid(f"the song {what} is not an audio file clipline reads ({why})")
    try:
        data = json.loads(done.stdout or b"{}")
    except ValueError as exc:
        raise SourceInvalid(f"ffprobe could not describe the song {what}") from exc
    fmt = str((data.get("format") or {}).get("format_name") or "").split(",")[0]
    if fmt not in ffmpeg_args.SONG_DEMUXERS:
        raise SourceInvalid(f"the song {what} has format {fmt or 'unknown'!r}, not one clipline reads")
    audio = [s for s in data.get("streams") or [] if s.get("codec_type") == "audio"]
    if not audio:
        raise SourceInvalid(f"the song {what} has no audio stream")
    # The audio stream's own length: the container's spans every track (1 s of AAC beside a 10 s video
    # track is a 10 s file); a container that keeps no per-stream duration (Matroska, Ogg) gives its own.
    duration_s = _seconds(audio[0].get("duration")) or _seconds((data.get("format") or {}).get("duration"))
    indexed, held = _count(audio[0].get("nb_frames")), _count(audio[0].get("nb_read_packets"))
    whole = indexed is None or held is None or held >= indexed
    return Song(fmt, audio[0].get("codec_name"), duration_s, whole=whole)


def _count(value: object) -> int | None:
    """ffprobe's packet count (a string, "N/A" or absent) as an int, None when unknown."""
    try:
        return int(str(value))
    except ValueError:
        return None


def _seconds(value: object) -> float:
    """ffprobe's duration (a string, "N/A" or absent) in seconds; 0.0 unless finite and positive."""
    try:
        seconds = float(str(value))
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def describe(view: JobView) -> str:
    """The song as the request names it (its URL or its path under the media directory)."""
    audio = view.request.audio
    if audio is None:
        return "(none)"
    return repr(redact.text(audio.url) if audio.url is not None else audio.path)


def prepare(ctx: Context, view: JobView, *, wait_s: float = SONG_LOCK_WAIT_S) -> Track | None:
    """The track to mux (stream copy), or None for a silent video.

    One preparer per job at a time (a leased lock): the plan and assemble stages never fetch or encode
    the same song together. Raises Source*/ClipLineError, and ``leases.LeaseTimeout`` (transient)
    when another preparer held the song for ``wait_s``.
    """
    prepared = files.job_work_dir(ctx.settings, view.job_id) / "audio" / "track.m4a"
    if view.request.audio is None:
        return None
    with leases.held(ctx.redis, keys.job_lock(view.job_id, SONG_LOCK), wait_s=wait_s):
        if prepared.exists():
            return Track(prepared, 0)
        return _prepare(ctx, view, prepared)


#: The song lock's stage name in ``keys.job_lock``.
SONG_LOCK = "song"


def _prepare(ctx: Context, view: JobView, prepared: Path) -> Track | None:
    got = _source(ctx, view)
    if got is None:
        return None
    source, nbytes = got
    length_s = total_frames(view.request) / view.request.output.fps
    song = probe(ctx, source, describe(view))
    if not song.whole:  # its stated length is not there: encoded (padded with silence) like a short song
        log.warning("song.cut_short", song=describe(view), detail="the file ends before its index does")
    if song.codec == "aac" and song.fmt == "mov" and song.duration_s >= length_s and song.whole:
        if source.suffix == "":  # downloaded: name it so the muxer sees an MP4/M4A
            os.replace(source, prepared)
            return Track(prepared, nbytes)
        return Track(source, nbytes)
    prepared.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_name(prepared)
    try:
        run(
            ffmpeg_args.song_argv(ctx.ffmpeg, source, song.fmt, tmp, length_s=length_s),
            timeout_s=ctx.settings.assemble_timeout_s,
            tag=view.job_id,
        )
        os.replace(tmp, prepared)
    except FFmpegFailed as exc:
        if exc.transient:  # killed from outside: the same encode may well succeed again
            raise
        # ffprobe read it, the encode cannot (a sample rate no resampler takes, say): the song is at fault
        raise SourceInvalid(f"the song {describe(view)} could not be encoded to AAC: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return Track(prepared, nbytes)
