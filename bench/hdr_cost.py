"""What tone mapping an HDR source costs a clip: the same cut's ffmpeg, its source taken as HDR and as
SDR, the tone mapping at the clip's size (as cut) and at the source's (as it was first built).

    .venv/bin/python -m bench.hdr_cost [--size 1920x1080] [--clip 1280x720] [--seconds 3] [--repeat 3]

Makes a PQ (HDR10) HEVC source of the size asked from ffmpeg's ``testsrc2`` (converted by zimg, SDR
white at 203 cd/m2), plans nothing (one keyframe-started run, every frame kept), and runs
``ffmpeg_args.cut_argv`` for it with one thread (a clip's share of the cores at cap 4 on 2 cores),
printing the median CPU seconds (user + system of the ffmpeg child) of each variant.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
from pathlib import Path

from pipeline import ffmpeg_args
from pipeline.ffmpeg_args import Colour, CutInput, EncodeProfile
from pipeline.frame_rule import RunCut
from pipeline.subprocesses import run


def _source(path: Path, size: str, seconds: float) -> None:
    pq = "zscale=tin=bt709:pin=bt709:min=bt709:rin=tv:t=smpte2084:p=bt2020:m=bt2020nc:r=tv:npl=203"
    argv = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=s={size}:r=30:d={seconds}",
    ]
    argv += ["-vf", f"{pq},format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast"]
    argv += ["-x265-params", "log-level=error", "-color_primaries", "bt2020", "-color_trc", "smpte2084"]
    run([*argv, "-colorspace", "bt2020nc", str(path)], timeout_s=600)


def _before_scale(argv: list[str]) -> list[str]:
    """The cut as first built: tone-mapped at the source's size, then scaled (the scale's text and the
    tone mapping's swapped in the filter graph, each link label left where it was)."""
    at = argv.index("-filter_complex") + 1
    found = re.search(
        r"(scale=min\(.*?)(\[s\d+\];\[s\d+\])(zscale=.*?format=yuv420p)(\[s\d+\];\[s\d+\]pad=)", argv[at]
    )
    assert found, argv[at]
    scale, link, chain, to_pad = found.groups()
    return [
        *argv[:at],
        argv[at][: found.start()] + chain + link + scale + to_pad + argv[at][found.end() :],
        *argv[at + 1 :],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--clip", default="1280x720")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    w, h = (int(x) for x in args.clip.split("x"))
    profile = EncodeProfile(w, h, 30, "veryfast", 20, threads=1)
    frames = round(args.seconds * 30)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "pq.mp4"
        _source(src, args.size, args.seconds)
        out = Path(tmp) / "clip.mp4"
        cut = [RunCut(0, 0, frames, 30 * 512, 0, None)]  # x265 in MP4: time base 1/15360 (30 * 512)
        hdr = CutInput(src, "mp4", colour=Colour("smpte2084", "bt2020", "bt2020nc"))
        variants = {
            "source taken as SDR (no tone mapping)": ffmpeg_args.cut_argv(
                "ffmpeg", [CutInput(src, "mp4")], cut, out, frames=frames, profile=profile
            ),
            "tone-mapped at the clip's size (as cut)": ffmpeg_args.cut_argv(
                "ffmpeg", [hdr], cut, out, frames=frames, profile=profile
            ),
        }
        variants["tone-mapped at the source's size"] = _before_scale(
            variants["tone-mapped at the clip's size (as cut)"]
        )
        base = None
        print(f"{args.size} PQ source, {frames} frames, {args.clip} clip, 1 thread, median of {args.repeat}")
        for name, argv in variants.items():
            cpu = statistics.median((run(argv, timeout_s=600).cpu_ms or 0) / 1000 for _ in range(args.repeat))
            base = base or cpu
            print(f"  {name:42s} {cpu:6.2f} CPU-s  {cpu / base:4.2f}x  {cpu / frames * 1000:5.1f} ms/frame")


if __name__ == "__main__":
    main()
