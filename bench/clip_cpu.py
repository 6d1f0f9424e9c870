"""Where one clip's CPU goes (issue 16.1): clipline's exact subprocesses against the bare ``-ss`` cut.

    .venv/bin/python -m bench.clip_cpu [--video v00] [--start-ms 10300] [--length-ms 3000] [--repeat 5]
                                       [--size WxH] [--draft] [--threads N]

Plans one window of a bench source with the pipeline's own code (``HlsInputs`` over the bench media's
local segment files: the same joins, probes and keyframe start a worker does, without the network),
then runs, ``--repeat`` times each, every subprocess a clip costs and the bare script's
``ffmpeg -ss T -t W -i playlist.m3u8``, and prints the median CPU (user + system, ``wait4``) of each,
with the worker's own CPU for reading the joined run's packets in Python (``pipeline.ts_packets``).
``--draft`` cuts with a draft's profile (``output.quality: "draft"``) and adds the same cut with the decoder
told to skip the in-loop deblocking filter (``-skip_loop_filter all``: tried for drafts, not kept; see
BENCHMARKS.md). ``--threads`` sizes a clip's threads as a worker does (1 at cap 4 on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipeline import ffmpeg_args, probe, ts_packets
from pipeline.ffmpeg_args import EncodeProfile
from pipeline.frame_rule import output_times, run_cuts
from pipeline.hls import MediaPlaylist, Segment, parse_playlist, select_segments
from pipeline.hls_inputs import HlsInputs
from pipeline.models import OutputProfile
from pipeline.segments import Fetched
from pipeline.subprocesses import run

from . import job
from .run import CACHE


class _LocalSegments:
    """``SegmentCache``'s interface over the bench media's files: no network, nothing counted."""

    def __init__(self, folder: Path, scratch: Path) -> None:
        self.folder, self.scratch = folder, scratch

    def _path(self, seg: Segment) -> Path:
        return self.folder / seg.uri.rsplit("/", 1)[1]

    def fetch(self, job_id: str, video_id: str, group: list[Segment], **_: Any) -> Fetched:
        return Fetched([self._path(s) for s in group], 0, 0, len(group))

    def head(self, job_id: str, video_id: str, seg: Segment) -> tuple[Path, int]:
        return self._path(seg), 0

    def root(self, job_id: str, video_id: str) -> Path:
        return self.scratch


def _skip_loop_filter(argv: list[str]) -> list[str]:
    """``argv`` with ``-skip_loop_filter all`` before each input (a decoder option)."""
    out: list[str] = []
    for arg in argv:
        if arg == "-i":
            out += ["-skip_loop_filter", "all"]
        out.append(arg)
    return out


def _cpu_ms(argvs: list[list[str]], repeat: int) -> list[float]:
    """The median CPU of each command, run in turn ``repeat`` times (interleaved: a slower minute of the
    machine weighs on every command alike)."""
    samples: list[list[float]] = [[] for _ in argvs]
    for _ in range(repeat):
        for argv, got in zip(argvs, samples, strict=True):
            got.append(run(argv, timeout_s=120).cpu_ms or 0.0)
    return [statistics.median(got) for got in samples]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default="v00")
    ap.add_argument("--start-ms", type=int, default=10_300)
    ap.add_argument("--length-ms", type=int, default=3_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", help="sources and output of WxH (default 640x360), as bench.run --size")
    ap.add_argument("--draft", action="store_true", help="a draft's profile, with and without deblocking")
    ap.add_argument("--threads", type=int, default=0, help="a worker's threads per clip (0: ffmpeg picks)")
    args = ap.parse_args()
    if args.size:
        job.resize(args.size)
    samples = job.media(CACHE)
    folder = samples.root / "hls" / args.video
    playlist = parse_playlist((folder / "index.m3u8").read_text(), f"http://x/hls/{args.video}/index.m3u8")
    assert isinstance(playlist, MediaPlaylist)
    fps = job.FPS
    frames = args.length_ms * fps // 1000
    quality = "draft" if args.draft else "final"
    output = OutputProfile(width=job.WIDTH, height=job.HEIGHT, fps=fps, quality=quality)
    profile = EncodeProfile.for_output(output, "veryfast", 20, threads=args.threads)
    times = output_times(args.start_ms, args.length_ms, fps, frames)
    segments = select_segments(playlist, args.start_ms, args.start_ms + args.length_ms)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="clip-cpu-") as tmp:
        scratch = Path(tmp)
        ctx = SimpleNamespace(ffprobe="ffprobe", segments=_LocalSegments(folder, scratch))
        planned = HlsInputs(ctx, "j", args.video, playlist, scratch).plan(segments, times)  # type: ignore[arg-type]
        cuts = run_cuts(planned.picks, planned.runs, fps, times)
        out = scratch / "clip.mp4"
        clip = ffmpeg_args.cut_argv("ffmpeg", planned.inputs, cuts, out, frames=frames, profile=profile)
        bare = ffmpeg_args.seek_cut_argv(
            "ffmpeg",
            str(folder / "index.m3u8"),
            scratch / "bare.mp4",
            offset_s=args.start_ms / 1000,
            window_s=args.length_ms / 1000,
            frames=frames,
            profile=profile,
        )
        joined = sorted(scratch.glob("run*.ts"))
        data = joined[0].read_bytes()
        started = time.process_time()
        for _ in range(args.repeat):
            ts_packets.video_packets(data)
        rows.append(
            (
                "clipline: Python read of the joined run's packets (ts_packets, in the worker)",
                (time.process_time() - started) * 1000 / args.repeat,
            )
        )
        measured: list[tuple[str, Callable[[], list[str]]]] = [
            (
                "clipline before ts_packets: ffprobe of the joined run (every packet)",
                lambda: ffmpeg_args.video_packets_argv("ffprobe", joined[0], "mpegts"),
            ),
            (
                "clipline before 16.1 follow-up: ffprobe of the keyframe-started run (first packet)",
                lambda: ffmpeg_args.video_packets_argv(
                    "ffprobe", planned.inputs[0].path, "mpegts", first_only=True
                ),
            ),
            ("clipline: encode (cut_argv)", lambda: clip),
            ("bare: ffmpeg -ss T -t W -i playlist.m3u8", lambda: bare),
        ]
        if args.draft:
            skipping = _skip_loop_filter(clip)
            measured.append(("clipline draft, decoder skipping the deblocking filter", lambda: skipping))
        medians = _cpu_ms([argv() for _, argv in measured], args.repeat)
        rows.extend((name, ms) for (name, _), ms in zip(measured, medians, strict=True))
        decoded = probe.video_packets("ffprobe", planned.inputs[0].path, "mpegts")
        print(
            f"window {args.video} {args.start_ms}+{args.length_ms} ms, {frames} frames; "
            f"clipline decodes {len(decoded.packets)} packets from {planned.inputs[0].path.name}"
        )
        print("argv clipline:", " ".join(clip))
        print("argv bare:    ", " ".join(bare))
    for name, ms in rows:
        print(f"{ms:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
