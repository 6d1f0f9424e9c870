"""What ffprobe says about a file's video stream: time base, rate, whether it is interlaced, its colour
(``ffmpeg_args.Colour``: HDR is tone-mapped), and every packet's pts, key flag and byte position. The
argv is built in ``ffmpeg_args``; this module runs it and reads the JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from . import ffmpeg_args
from .errors import FFmpegFailed, SourceInvalid
from .subprocesses import run

#: ffprobe's ``field_order`` for interlaced video: top or bottom field first, coded and shown in either
#: order (``progressive`` and ``unknown`` are not).
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})


@dataclass(frozen=True)
class Packet:
    pts: int
    key: bool
    pos: int | None


@dataclass(frozen=True)
class VideoProbe:
    time_base: Fraction
    rate: Fraction | None
    codec: str
    packets: tuple[Packet, ...]  # in decode order
    cpu_ms: float
    #: the stream's frames are interlaced (ffprobe's ``field_order`` names which field comes first)
    interlaced: bool = False
    #: the stream's transfer, primaries and matrix ("" where not said)
    colour: ffmpeg_args.Colour = ffmpeg_args.Colour()

    @property
    def display_pts(self) -> tuple[int, ...]:
        return tuple(sorted(p.pts for p in self.packets))

    @property
    def first_key(self) -> Packet:
        return next(p for p in self.packets if p.key)


def _fraction(text: str | None) -> Fraction | None:
    try:
        value = Fraction(text or "")
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def video_packets(
    ffprobe: str, path: Path, fmt: str, *, first_only: bool = False, what: str = "", keyless: bool = False
) -> VideoProbe:
    """Probe ``path`` (demuxer ``fmt``). Raises SourceInvalid when it has no video frame with a timestamp,
    or no keyframe unless ``keyless`` (a run of segments from inside a GOP: its caller looks further
    back)."""
    done = run(
        ffmpeg_args.video_packets_argv(ffprobe, path, fmt, first_only=first_only), timeout_s=60, check=False
    )
    name = what or path.name
    if done.returncode < 0:  # killed from outside (OOM killer): transient, like a killed ffmpeg
        raise FFmpegFailed(
            f"ffprobe was killed by signal {-done.returncode} reading {name}",
            argv=done.argv,
            returncode=done.returncode,
        )
    try:
        data = json.loads(done.stdout or b"{}")
    except ValueError as exc:
        raise SourceInvalid(f"ffprobe could not read {name}: {done.stderr.strip()[-300:]}") from exc
    streams = data.get("streams") or []
    tb = _fraction(streams[0].get("time_base")) if streams else None
    packets = tuple(
        Packet(
            int(p["pts"]),
            "K" in p.get("flags", ""),
            int(p["pos"]) if p.get("pos") not in (None, "N/A") else None,
        )
        for p in data.get("packets") or []
        if p.get("pts") not in (None, "N/A")
    )
    if tb is None or not packets:
        why = done.stderr.strip()[-300:] or "no video stream with a timestamp"
        raise SourceInvalid(f"{name} has no video timestamps to cut on ({why})")
    if not (keyless or any(p.key for p in packets)):
        raise SourceInvalid(f"{name} has no keyframe to start decoding at (it starts inside a GOP)")
    stream = streams[0]
    return VideoProbe(
        tb,
        _fraction(stream.get("r_frame_rate")),
        str(stream.get("codec_name", "")),
        packets,
        done.cpu_ms or 0.0,
        stream.get("field_order") in INTERLACED_FIELD_ORDERS,
        ffmpeg_args.Colour(
            _named(stream.get("color_transfer")),
            _named(stream.get("color_primaries")),
            _named(stream.get("color_space")),
        ),
    )


def _named(value: object) -> str:
    """ffprobe's name for a colour property, "" where the stream does not say (``unknown``)."""
    text = str(value or "")
    return "" if text in ("unknown", "unspecified", "reserved") else text
