"""The benchmark's media and its 60-line job: gaps between lines, repeated segments, short sources."""

from __future__ import annotations

import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import SampleSet, SourceSpec, build_sample_set
from pipeline.hls import MediaPlaylist, parse_playlist, select_segments
from pipeline.models import parse_request
from pipeline.timeline import build_slots

WIDTH, HEIGHT, FPS, SEGMENT_S = 640, 360, 30, 4.0
#: One keyframe a second (a 30-frame GOP) in 4 s segments, like most CDN encodes (1-2 s GOPs in 4-6 s
#: segments). Until issue 16.1's follow-up the sources had one keyframe per segment, which hid
#: clipline's start at the keyframe before the window (the bare ``-ss`` decodes from the segment start).
KEYFRAME_S = 1.0
SOURCES = [SourceSpec(f"v{i:02d}", duration_s=60.0) for i in range(6)] + [
    SourceSpec("v_short", duration_s=8.0)
]
API_KEY, INDEX_ID = "bench-key", "bench-index"


def resize(size: str) -> None:
    """Use sources and an output of ``size`` ("WxH", default 640x360) for this run (``--size``): the same
    job at another frame size, e.g. 1280x720 to see what the encode costs where it dominates."""
    global WIDTH, HEIGHT
    w, _, h = size.partition("x")
    WIDTH, HEIGHT = int(w), int(h)


def media(cache: Path, width: int | None = None, height: int | None = None) -> SampleSet:
    return build_sample_set(
        cache,
        SOURCES,
        song_s=240.0,
        width=width or WIDTH,
        height=height or HEIGHT,
        fps=FPS,
        segment_s=SEGMENT_S,
        keyframe_s=KEYFRAME_S,
    )


def ladder_media(cache: Path) -> SampleSet:
    """The sources as master playlists with two renditions, the job's size and half of it (the bottom
    of an ABR ladder, as CDNs serve video): a final render reads the first, a draft the second
    (``--ladder``). Files are hard links into the two single-rendition sample sets."""
    full = media(cache)
    half_w, half_h = WIDTH // 4 * 2, HEIGHT // 4 * 2
    half = media(cache, half_w, half_h)
    base = cache / f"ladder-{full.root.parent.name}-{half.root.parent.name}"
    root = base / "cdn"
    if not (base / "complete.json").exists():
        tmp = base.with_name(f".{base.name}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for sample, name in ((full, "hi"), (half, "lo")):
            for f in sorted((sample.root / "hls").glob("*/*")):
                dest = tmp / "cdn" / "hls" / f.parent.name / name / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, dest)
        (tmp / "cdn" / "audio").mkdir(parents=True)
        os.link(full.song, tmp / "cdn" / "audio" / full.song.name)
        for folder in sorted((tmp / "cdn" / "hls").iterdir()):
            (folder / "index.m3u8").write_text(
                "#EXTM3U\n"
                f'#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION={half_w}x{half_h},CODECS="avc1.64001f"\n'
                "lo/index.m3u8\n"
                f'#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION={WIDTH}x{HEIGHT},CODECS="avc1.64001f"\n'
                "hi/index.m3u8\n"
            )
        (tmp / "complete.json").write_text("{}")
        shutil.rmtree(base, ignore_errors=True)
        os.replace(tmp, base)
    return SampleSet(root, full.media_dir, root / "audio" / full.song.name, full.sources)


def request(job_id: str, cdn: LoopbackCDN, lines: int = 60, seed: int = 11) -> dict[str, Any]:
    """A song of ``lines`` lines, 2-4 s each, some with gaps; every third line reuses a nearby window."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    t = 0
    prev: dict[str, Any] | None = None
    for i in range(lines):
        t += rng.choice((0, 0, 0, 250, 600))  # gaps between some lines
        length = rng.randrange(2000, 4000, 50)
        if prev is not None and i % 3 == 2:  # repeated segments: a window next to the previous one
            clip = dict(prev, start_ms=prev["start_ms"] + 500, end_ms=prev["end_ms"] + 500)
        elif i % 10 == 7:  # a short source: the window runs past its end, the last frame is held
            clip = {"video_id": "v_short", "start_ms": 6500, "end_ms": 6500 + length}
        else:
            vid = f"v{rng.randrange(6):02d}"
            start = rng.randrange(0, 54_000, 40)
            clip = {"video_id": vid, "start_ms": start, "end_ms": start + length + rng.choice((-500, 0, 300))}
        if i % 2 == 0:
            clip["hls_url"] = cdn.hls_url(clip["video_id"])
        else:
            clip.pop("hls_url", None)
        out.append({"text": f"line {i + 1}", "start_ms": t, "end_ms": t + length, "clip": clip})
        prev = clip
        t += length
    return {
        "job_id": job_id,
        "output": {"width": WIDTH, "height": HEIGHT, "fps": FPS},
        "audio": {"url": cdn.url("audio/song.m4a")},
        "lines": out,
    }


def needed_segment_bytes(samples: SampleSet, req_data: dict[str, Any]) -> int:
    """Bytes of the distinct segments overlapping the windows the job shows: the on-demand minimum."""
    req = parse_request(req_data)
    needed: set[Path] = set()
    for slot, line in zip(build_slots(req), req.lines, strict=True):
        folder = samples.root / "hls" / line.clip.video_id
        playlist = parse_playlist((folder / "index.m3u8").read_text(), f"http://x/hls/{line.clip.video_id}/i")
        assert isinstance(playlist, MediaPlaylist)
        need_ms = min(line.clip.end_ms - line.clip.start_ms, math.ceil(slot.frames * 1000 / slot.fps))
        for seg in select_segments(playlist, line.clip.start_ms, line.clip.start_ms + need_ms):
            needed.add(folder / seg.uri.rsplit("/", 1)[1])
    return sum(p.stat().st_size for p in needed)
