"""The job's sound track, prepared once so assembly is a stream copy of both tracks.

Encoding a 3-minute song to AAC costs seconds; done at assembly it would sit
on the critical path. The plan stage starts preparing it right after the
fan-out, on a thread of its own (``prepare_in_background``: a song that drips
until its deadline holds that thread, not one that plans other jobs), while
clips are being cut: an AAC song in MP4 whose audio stream starts with the movie
and (its own length, not its container's, which spans every track) is at least
as long as the video is used as it is (assembly copies and cuts it); anything
else is encoded once to AAC, its samples timed by their count (an MP4 track that
starts late keeps its lead as silence), padded with silence or cut to the
video's exact length. Assembly calls
``prepare`` too, which reuses the prepared file when it is there; the two never
prepare at the same time (a leased lock per job's song), and an assembler that
finds the song being prepared elsewhere defers itself rather than wait in its
thread (``assembly.Deferred``).

ffmpeg never decides what to open: the song is probed by format first with
only single-file audio demuxers allowed (``ffmpeg_args.SONG_DEMUXERS``) and
only the local file; a playlist (HLS, DASH), a concat list, or a file without
an audio stream is refused (``SourceInvalid``: the job fails, naming it).
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import structlog

from . import fetch, ffmpeg_args, files, keys, leases, netguard, redact
from .context import Context, JobView
from .errors import ClipLineError, FFmpegFailed, SourceError, SourceInvalid, SourceUnavailable
from .leases import LeaseTimeout
from .logs import bind_job
from .subprocesses import run
from .timeline import total_frames

log = structlog.get_logger("clipline.audio")


def _source(ctx: Context, view: JobView) -> Path | None:
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
        return path
    assert audio.url is not None
    dest = files.job_work_dir(ctx.settings, view.job_id) / "audio" / "source"
    if dest.exists():
        return dest
    nbytes = fetch.download(
        audio.url, dest, policy=netguard.Policy.of(ctx.settings), limits=fetch.audio_limits(ctx.settings)
    )
    ctx.observer.bytes_fetched(nbytes)
    # Kept for the assembly, which may run in another process than the download (the plan stage's)
    pipe = ctx.redis.pipeline()
    pipe.incrby(keys.job_song_bytes(view.job_id), nbytes)
    pipe.expire(keys.job_song_bytes(view.job_id), keys.JOB_KEY_TTL_S)
    pipe.execute()
    return dest


def fetched_bytes(ctx: Context, job_id: str) -> int:
    """The bytes the job's song took to download, by whichever process downloaded it (0 for none)."""
    return int(ctx.redis.get(keys.job_song_bytes(job_id)) or 0)


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
    lead_s: float = 0.0  # an MP4's audio track starts this late on its movie timeline (an empty edit)
    rate: int = 0  # the audio stream's sample rate (0: not stated)

    @property
    def lead_samples(self) -> int:
        """The silence a player plays before the song's first sample, in its samples."""
        return round(self.lead_s * self.rate)


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
    # An MP4's tracks are placed on its movie timeline (an empty edit delays one); other containers start
    # with their first sample (ffmpeg states an MP3's dropped encoder delay as its start: not a delay).
    lead_s = _seconds(audio[0].get("start_time")) if fmt == "mov" else 0.0
    rate = _count(audio[0].get("sample_rate")) or 0
    return Song(fmt, audio[0].get("codec_name"), duration_s, whole=whole, lead_s=lead_s, rate=rate)


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


def prepare(ctx: Context, view: JobView, *, wait_s: float = SONG_LOCK_WAIT_S) -> Path | None:
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
            return prepared
        return _prepare(ctx, view, prepared)


#: The song lock's stage name in ``keys.job_lock``.
SONG_LOCK = "song"

#: Songs one process prepares at once in the background (``prepare_in_background``): a slow song holds one
#: of these threads for up to CLIPLINE_AUDIO_DEADLINE_S, never a thread that plans or assembles jobs.
SONG_THREADS = 4
#: Background attempts at a song that fails for now (unreachable, too slow) before the job fails naming it.
SONG_ATTEMPTS = 3
_song_threads = threading.BoundedSemaphore(SONG_THREADS)


class SongState(StrEnum):
    """Where the job's song stands, for an assembler deciding whether to wait (``song_state``)."""

    READY = "ready"  # prepared, or nothing slow to wait for (no song, a local file): assemble now
    PREPARING = "preparing"  # a process holds its lease: downloading or encoding it
    FAILED = "failed"  # for good (``final_failure`` says why): assemble now, failing the job naming it
    TO_PREPARE = "to_prepare"  # nobody at it, attempts left: start one (``prepare_in_background``)


def prepare_in_background(ctx: Context, job_id: str) -> bool:
    """Start an attempt at the job's song on a thread of its own (the plan stage right after its fan-out;
    an assembler that finds it neither ready nor being prepared). False, doing nothing, when
    ``SONG_THREADS`` are busy with other songs. A failed attempt is recorded for the assembler
    (``final_failure``); one that finds another process at the song leaves it to that one."""
    if not _song_threads.acquire(blocking=False):
        log.info("song.not_started", reason=f"{SONG_THREADS} songs are being prepared", retry="later")
        return False

    def run() -> None:
        try:
            view = ctx.view(job_id)
            with bind_job(job_id, view.request.trace_id):
                try:
                    prepare(ctx, view, wait_s=0)
                except LeaseTimeout:
                    pass  # another process is at it
                except (ClipLineError, OSError) as exc:
                    failures = _record_failure(ctx, job_id, exc)
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("song.not_prepared", error=error, failures=failures, of=SONG_ATTEMPTS)
        except Exception as exc:  # noqa: BLE001 - a fault of ours: recorded, so the job fails naming it
            log.exception("song.internal_error", job_id=job_id)
            _record_failure(ctx, job_id, ClipLineError(f"internal error {type(exc).__name__}: {exc}"))
        finally:
            _song_threads.release()

    threading.Thread(target=run, name=f"song-{job_id}", daemon=True).start()
    return True


def _record_failure(ctx: Context, job_id: str, exc: Exception) -> int:
    if getattr(exc, "transient", False):
        kind = "unavailable"
    else:
        kind = "invalid" if isinstance(exc, SourceError) else "error"
    key = keys.job_song(job_id)
    pipe = ctx.redis.pipeline()
    pipe.hincrby(key, "failures", 1)
    pipe.hset(key, mapping={"kind": kind, "error": str(exc)[:2000]})
    pipe.expire(key, keys.JOB_KEY_TTL_S)
    return int(pipe.execute()[0])


def final_failure(ctx: Context, job_id: str) -> ClipLineError | None:
    """The error that ended the job's song for good: a permanent one, or the last of ``SONG_ATTEMPTS``
    transient ones (raised again by the assembler, whose report and error name the song); else None."""
    got = {keys.text(k): keys.text(v) for k, v in ctx.redis.hgetall(keys.job_song(job_id)).items()}
    if not got:
        return None
    kind, error = got.get("kind", "error"), got.get("error", "")
    if kind == "unavailable":
        return SourceUnavailable(error) if int(got.get("failures", 0)) >= SONG_ATTEMPTS else None
    return SourceInvalid(error) if kind == "invalid" else ClipLineError(error)


def song_state(ctx: Context, view: JobView) -> SongState:
    """For an assembler: whether the song is ready (or needs no waiting), being prepared, failed for good,
    or to be prepared (a background attempt is to be started)."""
    audio = view.request.audio
    prepared = files.job_work_dir(ctx.settings, view.job_id) / "audio" / "track.m4a"
    if audio is None or audio.url is None or prepared.exists():
        return SongState.READY
    if ctx.redis.exists(keys.job_lock(view.job_id, SONG_LOCK)):
        return SongState.PREPARING
    if final_failure(ctx, view.job_id) is not None:
        return SongState.FAILED
    return SongState.TO_PREPARE


def for_assembly(ctx: Context, view: JobView) -> Path | None:
    """``prepare`` for the assembler, which raises the song's recorded final failure instead of trying
    again in its own thread."""
    if (failed := final_failure(ctx, view.job_id)) is not None:
        raise failed
    return prepare(ctx, view)


def _prepare(ctx: Context, view: JobView, prepared: Path) -> Path | None:
    source = _source(ctx, view)
    if source is None:
        return None
    length_s = total_frames(view.request) / view.request.output.fps
    song = probe(ctx, source, describe(view))
    if not song.whole:  # its stated length is not there: encoded (padded with silence) like a short song
        log.warning("song.cut_short", song=describe(view), detail="the file ends before its index does")
    # Copied only when it starts with the movie: the mux moves a copied track's first sample to 0
    copyable = song.codec == "aac" and song.fmt == "mov" and song.lead_samples == 0
    if copyable and song.duration_s >= length_s and song.whole:
        if source.suffix == "":  # downloaded: name it so the muxer sees an MP4/M4A
            os.replace(source, prepared)
            return prepared
        return source
    prepared.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_name(prepared)
    try:
        run(
            ffmpeg_args.song_argv(
                ctx.ffmpeg,
                source,
                song.fmt,
                tmp,
                length_s=length_s,
                # a lead past the video's end (a hostile start time) is silence to the end, no longer
                lead_samples=min(song.lead_samples, math.ceil(length_s * song.rate)),
            ),
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
    return prepared
