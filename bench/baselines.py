"""What clipline is compared with: a bare parallel-ffmpeg script and a download-everything-first script.

Both cut the same clips with the same encoder settings (pipeline.ffmpeg_args) and
assemble them the same way; neither has a queue, retries or fallbacks.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipeline import ffmpeg_args
from pipeline.ffmpeg_args import EncodeProfile
from pipeline.models import parse_request
from pipeline.subprocesses import run
from pipeline.timeline import build_slots, total_frames


def _assemble(ffmpeg: str, clips: list[Path], work: Path, audio_url: str, frames: int, fps: int) -> None:
    song = work / "song.m4a"
    song.write_bytes(httpx.get(audio_url, timeout=60).content)
    listing = work / "list.txt"
    listing.write_text(ffmpeg_args.concat_list_text(clips))
    run(
        ffmpeg_args.assemble_argv(
            ffmpeg, listing, work / "final.mp4", total_frames=frames, fps=fps, audio=song
        ),
        timeout_s=600,
    )


@dataclass(frozen=True)
class BaselineRun:
    wall_s: float
    clip_cpu_ms: list[float]  # each clip's ffmpeg CPU (user + system, from wait4), as clipline reports it


def _cut_and_assemble(
    req_data: dict[str, Any],
    work: Path,
    cap: int,
    ffmpeg: str,
    *,
    prepare: Callable[[list[str]], dict[str, str]],
) -> BaselineRun:
    """prepare(video ids) -> ffmpeg input per video; then every clip (``cap`` at a time) and the assembly."""
    req = parse_request(req_data)
    profile = EncodeProfile(req.output.width, req.output.height, req.output.fps)
    slots = build_slots(req)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    inputs = prepare(sorted({line.clip.video_id for line in req.lines}))

    cpu_ms: list[float] = []

    def cut(i: int) -> Path:
        slot, clip = slots[i], req.lines[i].clip
        need_s = min(clip.duration_ms, math.ceil(slot.frames * 1000 / slot.fps)) / 1000
        out = work / f"{i:04d}.mp4"
        argv = ffmpeg_args.seek_cut_argv(
            ffmpeg,
            inputs[clip.video_id],
            out,
            offset_s=clip.start_ms / 1000,
            window_s=need_s,
            frames=slot.frames,
            profile=profile,
        )
        done = run(argv, timeout_s=300)
        cpu_ms.append(done.cpu_ms or 0.0)
        return out

    with ThreadPoolExecutor(cap) as pool:
        clips = list(pool.map(cut, range(len(slots))))
    _assemble(ffmpeg, clips, work, str(req.audio.url if req.audio else ""), total_frames(req), req.output.fps)
    return BaselineRun(time.monotonic() - started, cpu_ms)


def bare_parallel_ffmpeg(
    req_data: dict[str, Any], hls_url_of: dict[str, str], work: Path, cap: int, ffmpeg: str = "ffmpeg"
) -> BaselineRun:
    """``ffmpeg -ss T -i playlist.m3u8`` per clip, ``cap`` at a time, then the same assembly (seconds)."""
    return _cut_and_assemble(
        req_data,
        work,
        cap,
        ffmpeg,
        prepare=lambda videos: {v: hls_url_of[v] for v in videos},
    )


def download_everything_first(
    req_data: dict[str, Any], hls_url_of: dict[str, str], work: Path, cap: int, ffmpeg: str = "ffmpeg"
) -> BaselineRun:
    """Download every segment of every source (``cap`` at a time), remux to MP4, cut locally, assemble."""

    def fetch(video_id: str) -> str:
        base = hls_url_of[video_id]
        text = httpx.get(base, timeout=60).text
        names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        ts = work / f"{video_id}.ts"
        with open(ts, "wb") as fh, httpx.Client(timeout=60) as client:
            for name in names:
                fh.write(client.get(base.rsplit("/", 1)[0] + "/" + name).content)
        mp4 = work / f"{video_id}.mp4"
        run(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(ts), "-c", "copy", str(mp4)],
            timeout_s=300,
        )
        os.unlink(ts)
        return str(mp4)

    def prepare(videos: list[str]) -> dict[str, str]:
        with ThreadPoolExecutor(cap) as pool:
            return dict(zip(videos, pool.map(fetch, videos), strict=True))

    return _cut_and_assemble(req_data, work, cap, ffmpeg, prepare=prepare)
