"""Shared bits of the output checks (an outside audit's): job views, ffmpeg helpers."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.context import JobView
from pipeline.models import parse_request
from pipeline.timeline import build_slots


def request_for(
    job_id: str, video_id: str, windows: list[tuple[int, int, int]], *, fps: int = 30
) -> dict[str, Any]:
    """Lines back to back, each (source start ms, source end ms, slot ms) of ``video_id`` (no hls_url)."""
    lines: list[dict[str, Any]] = []
    t = 0
    for i, (start, end, slot_ms) in enumerate(windows):
        clip = {"video_id": video_id, "start_ms": start, "end_ms": end}
        lines.append({"text": f"l{i}", "start_ms": t, "end_ms": t + slot_ms, "clip": clip})
        t += slot_ms
    return {"job_id": job_id, "output": {"width": 160, "height": 90, "fps": fps}, "lines": lines}


def view_of(request: dict[str, Any]) -> JobView:
    req = parse_request(request, allowed_hosts=frozenset())
    return JobView(req, build_slots(req))


def frame_rule(
    start_ms: int, end_ms: int, frames: int, rate: Fraction, source_frames: int, fps: int = 30
) -> list[int]:
    """README's frame rule: output frame i shows source frame floor(t_i * rate), t_i held after i_last."""
    window_ms = min(end_ms - start_ms, math.ceil(frames * 1000 / fps))
    i_last = min(frames - 1, math.ceil(window_ms * fps / 1000) - 1)
    out = []
    for i in range(frames):
        t = Fraction(start_ms, 1000) + Fraction(min(i, i_last), fps)
        out.append(min(source_frames - 1, math.floor(t * rate)))
    return out


def remux(src: Path, dest: Path) -> Path:
    """``src`` stream-copied into ``dest``'s container (the same frames, the container's timestamps)."""
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-c",
            "copy",
            str(dest),
        ],
        check=True,
        timeout=120,
    )
    return dest
