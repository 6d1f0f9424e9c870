"""Sample media made by ffmpeg for tests, the demo and benchmarks.

Every sample video carries its absolute frame number in its picture: the top
third is a row of ``CODE_BITS`` black/white blocks, block b (from the left)
white when bit b of the code is set; the rest is a moving test pattern (so
segment sizes are realistic). The code of frame n is n in its low
``NUMBER_BITS`` bits and ``n % 3`` in the two bits above, a check that a
misread block shows. ``read_frames`` decodes every frame of a video made from
such a source (cut, scaled, re-encoded) and returns the source frame numbers it
shows, so a test can trace a clip frame by frame with no tolerance.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.ffmpeg_args import count_frames_argv
from pipeline.subprocesses import run

QUIET = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
CODE_BITS = 16
NUMBER_BITS = 14  # frame numbers up to 16383 (9 minutes at 30 fps)
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


class TraceError(ValueError):
    """A frame of a traced video does not carry a valid frame code."""


def frame_code(n: int) -> int:
    """The 16-bit code shown by source frame ``n``."""
    if not 0 <= n < 1 << NUMBER_BITS:
        raise ValueError(f"frame {n} cannot be coded in {NUMBER_BITS} bits")
    return n | (n % 3) << NUMBER_BITS


def decode_code(code: int) -> int:
    n = code & ((1 << NUMBER_BITS) - 1)
    if code >> NUMBER_BITS != n % 3:
        raise TraceError(f"code {code:#06x} fails its check bits (frame {n}?)")
    return n


def _code_expr() -> str:
    """geq luma of block X (0..15) of frame N: white when bit X of frame_code(N) is set."""
    number = "mod(floor(N/pow(2,X)),2)"
    check = f"mod(floor(mod(N,3)/pow(2,X-{NUMBER_BITS})),2)"
    return f"16+219*if(lt(X,{NUMBER_BITS}),{number},{check})"


def pattern_graph(duration_s: float, width: int, height: int, fps: int | str) -> str:
    """A lavfi graph of the frame-coded pattern: ``-f lavfi -i GRAPH`` (one video stream)."""
    band = height // 3
    code = (
        f"color=c=black:s={CODE_BITS}x2:r={fps}:d={duration_s:g},"
        f"geq=lum='{_code_expr()}':cb=128:cr=128,scale={width}:{band}:flags=neighbor[code]"
    )
    texture = f"testsrc2=s={width}x{height - band}:r={fps}:d={duration_s:g}[texture]"
    # square pixels: scaling the 16x2 code to the band made its pixels 3:2 wide (scale keeps the shown
    # aspect), and vstack passed that on, so every source said it was shown 3:2 too wide
    return f"{code};{texture};[code][texture]vstack=inputs=2,format=yuv420p,setsar=1"


def _pattern_input(duration_s: float, width: int, height: int, fps: int | str) -> list[str]:
    return ["-f", "lavfi", "-i", pattern_graph(duration_s, width, height, fps)]


def _encode_pattern(
    ffmpeg: str, duration_s: float, width: int, height: int, fps: int | str, tail: list[str]
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
    keyframe_s: float | None = None,
    ffmpeg: str = "ffmpeg",
) -> Path:
    """An HLS VOD of the frame-coded pattern: a keyframe every ``keyframe_s`` (default: one per segment;
    a divisor of ``segment_s`` keeps one at every segment start, like CDN encodes with short GOPs)."""
    final = root / "hls" / video_id
    tmp = root / "hls" / f".{video_id}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hls = [
        "-force_key_frames",
        f"expr:gte(t,n_forced*{keyframe_s or segment_s:g})",
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


def read_frames(video: Path, *, ffmpeg: str = "ffmpeg", fmt: str | None = None) -> list[int]:
    """The source frame number shown by every frame of ``video``, in order.

    Samples the middle rows of the code band, averages each block (``area``
    scaling to 4 pixels per block, the two inner ones read) and thresholds it.
    Raises TraceError for a frame whose code fails its check.
    """
    per_block = 4
    width = CODE_BITS * per_block
    argv = [ffmpeg, *QUIET]
    if fmt:
        argv += ["-f", fmt]
    argv += [
        "-i",
        str(video),
        "-map",
        "0:v:0",
        "-vf",
        f"crop=iw:ih/6:0:ih/12,scale={width}:1:flags=area,format=gray",
        "-f",
        "rawvideo",
        "-",
    ]
    out = run(argv, timeout_s=120).stdout
    frames = []
    for i in range(0, len(out) - width + 1, width):
        row = out[i : i + width]
        code = 0
        for b in range(CODE_BITS):
            level = (row[b * per_block + 1] + row[b * per_block + 2]) / 2
            if level > 126:
                code |= 1 << b
        try:
            frames.append(decode_code(code))
        except TraceError as exc:
            raise TraceError(f"{video.name} frame {len(frames)}: {exc}") from exc
    return frames


def count_frames(video: Path, *, ffprobe: str = "ffprobe") -> int:
    fmt = "mpegts" if video.suffix == ".ts" else "mp4"
    out = run(count_frames_argv(ffprobe, video, fmt), timeout_s=120).stdout
    return int(out.decode().strip().splitlines()[0])


@contextmanager
def building(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s build lock: processes building the same cached media at once (the test
    suite's workers) build it one after another; the later one finds it complete."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_sample_set(
    cache_dir: Path,
    sources: list[SourceSpec],
    *,
    song_s: float,
    width: int = 320,
    height: int = 180,
    fps: int = 30,
    segment_s: float = 2.0,
    keyframe_s: float | None = None,
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
        "keyframe_s": keyframe_s,
        # Any change to how samples are made (this file) makes a new cache entry: a stale sample set
        # made by an older generator is never reused.
        "generator": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    base = cache_dir / digest
    result = SampleSet(base / "cdn", base / "media", base / "cdn" / "audio" / "song.m4a", tuple(sources))
    marker = base / "complete.json"
    if marker.exists():
        return result
    with building(base):
        if not marker.exists():
            _build(result, marker, params, ffmpeg)
    return result


def _build(result: SampleSet, marker: Path, params: dict[str, Any], ffmpeg: str) -> None:
    """Make ``result``'s media as ``params`` say, then write ``marker`` (the set is complete)."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    size: dict[str, Any] = {k: params[k] for k in ("width", "height", "fps")} | {"ffmpeg": ffmpeg}
    jobs: list[Callable[[], Path]] = []
    for s in result.sources:
        if s.hls:
            jobs.append(
                partial(
                    make_hls_source,
                    result.root,
                    s.video_id,
                    duration_s=s.duration_s,
                    segment_s=params["segment_s"],
                    keyframe_s=params["keyframe_s"],
                    **size,
                )
            )
        if s.local:
            jobs.append(
                partial(make_local_copy, result.media_dir, s.video_id, duration_s=s.duration_s, **size)
            )
    jobs.append(partial(make_song, result.song, duration_s=params["song_s"], ffmpeg=ffmpeg))
    result.media_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(j) for j in jobs]:
            f.result()
    marker.write_text(json.dumps(params))
