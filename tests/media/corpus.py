"""A corpus of HLS variants made by other routes than clipline's own sample code.

Each variant is made by running ffmpeg's command line directly (its hls muxer
in its several modes, or one mpegts mux per segment with a playlist written
here) from a frame-coded source: every frame shows its absolute frame number
(``clipline.dev.samples.pattern_graph``), so a test can read back which source
frame each output frame shows. Frame n of every variant is displayed from
source time n / rate. Built once per content hash under ``.cache/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from clipline.dev.samples import pattern_graph

W, H = 160, 90
DURATION_S = 6
KEY = bytes(range(16))
TS_WRAP_S = (1 << 33) / 90000


@dataclass(frozen=True)
class Variant:
    name: str
    rate: Fraction
    frames: int  # frames in the source
    playlist: str = "index.m3u8"  # relative to the variant's folder


def ff(*args: str) -> None:
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(argv, check=True, timeout=300)


def _source(rate: str, seconds: float = DURATION_S) -> list[str]:
    """The frame-coded pattern plus a tone (audio packets come before video in each segment)."""
    return ["-f", "lavfi", "-i", pattern_graph(seconds, W, H, rate), "-f", "lavfi", "-i", f"sine=d={seconds}"]


def _x264(gop: int) -> list[str]:
    return [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "24",
        "-g",
        str(gop),
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "48k",
    ]


def _hls(folder: Path, seg_s: float, *extra: str, ext: str = "ts") -> list[str]:
    return [
        "-f",
        "hls",
        "-hls_time",
        f"{seg_s:g}",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        str(folder / f"s%03d.{ext}"),
        *extra,
        str(folder / "index.m3u8"),
    ]


def ts(folder: Path) -> None:
    ff(*_source("30"), *_x264(15), *_hls(folder, 1))


def fmp4(folder: Path) -> None:
    ff(*_source("30"), *_x264(15), *_hls(folder, 1, "-hls_segment_type", "fmp4", ext="m4s"))


def single_file(folder: Path) -> None:
    ff(
        *_source("30"),
        *_x264(15),
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        "single_file",
        str(folder / "index.m3u8"),
    )


def fmp4_single_file(folder: Path) -> None:
    ff(
        *_source("30"),
        *_x264(15),
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "single_file",
        str(folder / "index.m3u8"),
    )


def rounded_2997(folder: Path) -> None:
    """29.97 fps, 2.002 s segments listed as ``#EXTINF:2`` (ffmpeg's round_durations)."""
    ff(
        *_source("30000/1001", 12),
        *_x264(30),
        "-force_key_frames",
        "expr:gte(n,n_forced*60)",
        *_hls(folder, 2, "-hls_flags", "round_durations"),
    )


def rate(r: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        ff(*_source(r), *_x264(12), *_hls(folder, 1))

    return make


def offset(hours_s: float) -> Callable[[Path], None]:
    """Timestamps start ``hours_s`` in (a live-to-VOD archive); near 2^33 they wrap inside the source."""

    def make(folder: Path) -> None:
        ff(*_source("30"), *_x264(15), "-output_ts_offset", f"{hours_s:.3f}", *_hls(folder, 1))

    return make


def aes(folder: Path) -> None:
    (folder / "k.key").write_bytes(KEY)
    info = folder / "keyinfo"
    info.write_text(f"k.key\n{folder / 'k.key'}\n")
    ff(*_source("30"), *_x264(15), *_hls(folder, 1, "-hls_key_info_file", str(info)))
    info.unlink()


def per_segment(folder: Path) -> None:
    """ffmpeg's segment muxer: a new MPEG-TS muxer per segment, so continuity counters restart in each."""
    ff(
        *_source("30"),
        *_x264(15),
        "-force_key_frames",
        "expr:gte(t,n_forced)",
        "-f",
        "segment",
        "-segment_time",
        "1",
        "-segment_format",
        "mpegts",
        "-segment_list",
        str(folder / "index.m3u8"),
        "-segment_list_type",
        "m3u8",
        str(folder / "p%d.ts"),
    )


def discontinuity(folder: Path) -> None:
    """Frames 0..89 then 90..179, muxed apart: the second half's timestamps restart at the first's."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for half, (first, offset_s) in enumerate(((0, 0.0), (90, 0.0))):
        sub = folder / f"h{half}"
        sub.mkdir()
        ff(
            "-f",
            "lavfi",
            "-i",
            pattern_graph(DURATION_S, W, H, 30),
            "-f",
            "lavfi",
            "-i",
            "sine=d=3",
            "-filter_complex",
            f"[0:v]trim=start_frame={first}:end_frame={first + 90},setpts=PTS-STARTPTS[v]",
            "-map",
            "[v]",
            "-map",
            "1:a",
            *_x264(15),
            "-output_ts_offset",
            str(offset_s),
            *_hls(sub, 1),
        )
        if half:
            lines.append("#EXT-X-DISCONTINUITY")
        for ln in (sub / "index.m3u8").read_text().splitlines():
            if ln.startswith("#EXTINF"):
                lines.append(ln)
            elif ln and not ln.startswith("#"):
                lines.append(f"h{half}/{ln}")
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def master(folder: Path) -> None:
    """Two renditions (90p, 180p), an audio group, and a 720p rendition in a codec ffmpeg cannot decode."""
    for name, (w, h) in {"lo": (160, 90), "hi": (320, 180)}.items():
        (folder / name).mkdir()
        ff("-f", "lavfi", "-i", pattern_graph(DURATION_S, w, h, 30), *_x264(15)[:10], *_hls(folder / name, 1))
    (folder / "index.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/index.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x90,CODECS="avc1.64000c",AUDIO="aud"\nlo/index.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.64000d",AUDIO="aud"\nhi/index.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1280x720,CODECS="vvc1.1.L51.CQA.O1+3"\nvvc/index.m3u8\n'
    )


VARIANTS: dict[str, tuple[Callable[[Path], None], Variant]] = {
    "ts": (ts, Variant("ts", Fraction(30), 180)),
    "fmp4": (fmp4, Variant("fmp4", Fraction(30), 180)),
    "single_file": (single_file, Variant("single_file", Fraction(30), 180)),
    "fmp4_single_file": (fmp4_single_file, Variant("fmp4_single_file", Fraction(30), 180)),
    "per_segment": (per_segment, Variant("per_segment", Fraction(30), 180)),
    "discontinuity": (discontinuity, Variant("discontinuity", Fraction(30), 180)),
    "rounded_2997": (rounded_2997, Variant("rounded_2997", Fraction(30000, 1001), 360)),
    "r25": (rate("25"), Variant("r25", Fraction(25), 150)),
    "r23976": (rate("24000/1001"), Variant("r23976", Fraction(24000, 1001), 144)),
    "aes": (aes, Variant("aes", Fraction(30), 180)),
    "hours": (offset(10 * 3600), Variant("hours", Fraction(30), 180)),
    "wrap": (offset(TS_WRAP_S - 2.5), Variant("wrap", Fraction(30), 180)),
    "master": (master, Variant("master", Fraction(30), 180)),
}
VERSION = 1


def build(cache: Path) -> Path:
    """Make every variant under ``cache/<hash>/hls/<name>/`` once; returns the folder to serve."""
    digest = hashlib.sha256((Path(__file__).read_text() + str(VERSION)).encode()).hexdigest()[:12]
    base = cache / digest
    if (base / "complete.json").exists():
        return base
    tmp = cache / f".{digest}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for name, (make, _) in VARIANTS.items():
        folder = tmp / "hls" / name
        folder.mkdir(parents=True)
        make(folder)
    (tmp / "complete.json").write_text(json.dumps(sorted(VARIANTS)))
    shutil.rmtree(base, ignore_errors=True)
    os.replace(tmp, base)
    return base
