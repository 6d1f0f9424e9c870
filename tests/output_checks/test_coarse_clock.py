"""Outside audit, fixed since: a 30 fps source timed in milliseconds was cut with wrong frames."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import make_local_copy, read_frames
from pipeline import cutting, prefetch
from pipeline.models import ClipRecord
from tests.stubs import stub_context

from .helpers import frame_rule, remux, request_for, view_of

pytestmark = pytest.mark.integration  # real ffmpeg and a loopback CDN (no other server)

WINDOWS = [(1000, 2000, 1000), (2500, 3100, 900)]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LoopbackCDN]]:
    """The frame-coded pattern at 30 fps, 4 s: as .mp4 (exact timestamps), stream-copied into .mkv (1 ms
    timestamps: frame n at round(n * 33.333) ms), and that .mkv stream-copied into HLS (MPEG-TS, fMP4)."""
    root = tmp_path_factory.mktemp("d1")
    made = make_local_copy(root / "made", "v", duration_s=4.0, width=320, height=180, fps=30)
    mkv = remux(made, root / "made" / "v.mkv")
    for kind, name in (("mpegts", "s%03d.ts"), ("fmp4", "s%03d.m4s")):
        out = root / "cdn" / "hls" / kind
        out.mkdir(parents=True)
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(mkv), "-c", "copy", "-f", "hls"]
            + ["-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", kind]
            + ["-hls_segment_filename", str(out / name), str(out / "index.m3u8")],
            check=True,
            timeout=120,
        )
    with LoopbackCDN(root / "cdn") as cdn:
        yield root, cdn
    deadline = time.monotonic() + 30  # background prefetches end before the CDN's port is reused
    while prefetch.pending() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("source", ["local-mp4", "local-mkv", "hls-mpegts", "hls-fmp4"])
def test_a_30fps_source_with_millisecond_timestamps_shows_each_frame_once(
    source: str, media: tuple[Path, LoopbackCDN], tmp_path: Path
) -> None:
    """A 30 fps source whose timestamps are rounded to 1 ms (an .mkv local copy, or HLS packaged from one:
    frame 32 at 1067 ms, just after t=1066.67 ms) is cut showing frames 30, 31, 31, 33, 34, 34, ... instead of
    the frame rule's 30, 31, 32, 33, ... (one frame in three repeated, the next skipped), and report.json's
    source_last_frame follows the wrong picks ("local-mp4", exact timestamps, is the control)."""
    root, cdn = media
    ctx = stub_context(tmp_path, CLIPLINE_ALLOW_PRIVATE_NETWORKS="true", CLIPLINE_HTTP_TIMEOUT_S="5")
    ctx.settings.media_dir.mkdir(parents=True, exist_ok=True)
    kind, _, fmt = source.partition("-")
    request = request_for(f"d1-{source}", "v", WINDOWS)
    if kind == "local":
        (ctx.settings.media_dir / f"v.{fmt}").write_bytes((root / "made" / f"v.{fmt}").read_bytes())
    else:
        for line in request["lines"]:
            line["clip"]["hls_url"] = cdn.url(f"hls/{fmt}/index.m3u8")
    view = view_of(request)
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        # When the slot is cut (from the local copy, or from HLS)
        record: ClipRecord | None = (
            cutting.cut_from_local(ctx, view, slot.index)
            if kind == "local"
            else cutting.cut_from_hls(ctx, view, slot.index)
        )
        assert record is not None and record.path is not None
        # Then every output frame shows source frame floor(t_i * 30), traced frame by frame
        want = frame_rule(line.clip.start_ms, line.clip.end_ms, slot.frames, Fraction(30), 120)
        shown = read_frames(Path(record.path))
        assert shown == want, (source, slot.index, shown[:8], want[:8])
        assert (record.source_first_frame, record.source_last_frame) == (want[0], want[-1])
