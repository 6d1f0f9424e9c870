"""Sample media made by ffmpeg for tests, the demo and benchmarks.

Every sample video carries its frame number in its picture: the top half is
flat grey with luma ``16 + 8 * (n % 25)`` for frame n, the bottom half a moving
test pattern (so segment sizes are realistic). ``measure_code`` reads the code
back from any frame of any video made from it, so a test can tell which source
frame a clip starts on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.ffmpeg_args import count_frames_argv
from pipeline.subprocesses import run

QUIET = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
CODE_PERIOD = 25
CODE_STEP = 8  # luma per code: large enough that x264 never skips a frame's change
TIMEOUT_S = 300


@dataclass(frozen=True)
class SourceSpec:
    video_id: str
    duration_s: float
    hls: bool = True
    local: bool = False


@dataclass(frozen=True)
class SampleSet:
    root: Path  # serve this with LoopbackCDN: hls/{video_id}/index.m3u8, audio/song.m4a
    media_dir: Path  # local copies {video_id}.mp4
    song: Path
    sources: tuple[SourceSpec, ...]


def frame_code(n: int) -> int:
    return n % CODE_PERIOD


def _pattern_input(duration_s: float, width: int, height: int, fps: int) -> list[str]:
    half = height // 2
    lum = f"16+{CODE_STEP}*mod(N,{CODE_PERIOD})"
    code = f"color=c=black:s={width}x{half}:r={fps}:d={duration_s:g},geq=lum='{lum}':cb=128:cr=128"
    texture = f"testsrc2=s={width}x{height - half}:r={fps}:d={duration_s:g}"
    return [
        "-f",
        "lavfi",
        "-i",
        code,
        "-f",
        "lavfi",
        "-i",
        texture,
        "-filter_complex",
        "[0:v][1:v]vstack=inputs=2,format=yuv420p[v]",
        "-map",
        "[v]",
    ]


def _encode_pattern(
    ffmpeg: str, duration_s: float, width: int, height: int, fps: int, tail: list[str]
) -> None:
    """Encode the frame-coded pattern with the samples' H.264 settings; ``tail`` names the output."""
    run(
        [
            ffmpeg,
            *QUIET,
            *_pattern_input(duration_s, width, height, fps),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-r",
            str(fps),
            *tail,
        ],
        timeout_s=TIMEOUT_S,
    )


def make_hls_source(
    root: Path,
    video_id: str,
    *,
    duration_s: float,
    width: int = 320,
    height: int = 180,
    fps: int = 30,
    segment_s: float = 2.0,
    ffmpeg: str = "ffmpeg",
) -> Path:
    final = root / "hls" / video_id
    tmp = root / "hls" / f".{video_id}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hls = [
        "-force_key_frames",
        f"expr:gte(t,n_forced*{segment_s:g})",
        "-sc_threshold",
        "0",
        "-f",
        "hls",
        "-hls_time",
        f"{segment_s:g}",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        str(tmp / "seg_%05d.ts"),
        str(tmp / "index.m3u8"),
    ]
    _encode_pattern(ffmpeg, duration_s, width, height, fps, hls)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final / "index.m3u8"


def make_local_copy(
    media_dir: Path,
    video_id: str,
    *,
    duration_s: float,
    width: int = 320,
    height: int = 180,
    fps: int = 30,
    ffmpeg: str = "ffmpeg",
) -> Path:
    media_dir.mkdir(parents=True, exist_ok=True)
    final = media_dir / f"{video_id}.mp4"
    tmp = media_dir / f".{video_id}.{os.getpid()}.tmp.mp4"
    _encode_pattern(
        ffmpeg, duration_s, width, height, fps, ["-g", str(fps * 2), "-movflags", "+faststart", str(tmp)]
    )
    os.replace(tmp, final)
    return final


def make_song(path: Path, *, duration_s: float, ffmpeg: str = "ffmpeg") -> Path:
    """A tone as AAC in .m4a with its index at the end (reading it over HTTP needs Range requests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.m4a")
    run(
        [
            ffmpeg,
            *QUIET,
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={duration_s:g}",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            str(tmp),
        ],
        timeout_s=TIMEOUT_S,
    )
    os.replace(tmp, path)
    return path


def measure_code(video: Path, frame_index: int, *, ffmpeg: str = "ffmpeg") -> int:
    """The frame code shown by frame ``frame_index`` (0-based) of ``video``."""
    out = run(
        [
            ffmpeg,
            *QUIET,
            "-i",
            str(video),
            "-an",
            "-vf",
            f"select=eq(n\\,{frame_index}),crop=iw/2:ih/4:iw/4:ih/8,scale=16:8,format=yuv420p",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-",
        ],
        timeout_s=120,
    ).stdout
    if not out:
        raise ValueError(f"{video} has no frame {frame_index}")
    luma = out[: 16 * 8]  # the Y plane, in the video's own (limited) range
    mean = sum(luma) / len(luma)
    return max(0, min(CODE_PERIOD - 1, round((mean - 16) / CODE_STEP)))


def count_frames(video: Path, *, ffprobe: str = "ffprobe") -> int:
    out = run(count_frames_argv(ffprobe, video), timeout_s=120).stdout
    return int(out.decode().strip().splitlines()[0])


def build_sample_set(
    cache_dir: Path,
    sources: list[SourceSpec],
    *,
    song_s: float,
    width: int = 320,
    height: int = 180,
    fps: int = 30,
    segment_s: float = 2.0,
    ffmpeg: str = "ffmpeg",
) -> SampleSet:
    """Make (or reuse from ``cache_dir``) the sources, local copies and song described."""
    params = {
        "sources": [asdict(s) for s in sources],
        "song_s": song_s,
        "width": width,
        "height": height,
        "fps": fps,
        "segment_s": segment_s,
        "version": 1,
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    base = cache_dir / digest
    result = SampleSet(base / "cdn", base / "media", base / "cdn" / "audio" / "song.m4a", tuple(sources))
    marker = base / "complete.json"
    if marker.exists():
        return result
    base.mkdir(parents=True, exist_ok=True)
    size: dict[str, Any] = {"width": width, "height": height, "fps": fps, "ffmpeg": ffmpeg}
    jobs: list[Callable[[], Path]] = []
    for s in sources:
        if s.hls:
            jobs.append(
                partial(
                    make_hls_source,
                    result.root,
                    s.video_id,
                    duration_s=s.duration_s,
                    segment_s=segment_s,
                    **size,
                )
            )
        if s.local:
            jobs.append(
                partial(make_local_copy, result.media_dir, s.video_id, duration_s=s.duration_s, **size)
            )
    jobs.append(partial(make_song, result.song, duration_s=song_s, ffmpeg=ffmpeg))
    result.media_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(j) for j in jobs]:
            f.result()
    marker.write_text(json.dumps(params))
    return result
