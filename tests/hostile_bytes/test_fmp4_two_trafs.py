"""Outside audit E (each test failed on the code before its fix).

an fMP4 fragment that carries the video track in two track fragments (ISO/IEC 14496-12:
"within the movie fragment there is a set of track fragments, zero or more per track")."""

from __future__ import annotations

import json
import secrets
import struct
import subprocess
from pathlib import Path

import pytest

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import pattern_graph, read_frames
from pipeline import cutting, fmp4
from pipeline.context import Context, JobView
from pipeline.errors import ClipLineError
from pipeline.fmp4 import Trun, _box, boxes, tfhd_fields
from pipeline.models import parse_request
from pipeline.settings import load_settings
from pipeline.timeline import build_slots

pytestmark = pytest.mark.integration


def two_traf_fragment(src: bytes) -> tuple[bytes, bytes]:
    """(init, fragments) of ``src`` (one moof with one video traf) with the video traf split in two
    halves, each its own traf with its own tfdt and trun (offsets relative to the moof)."""
    top = boxes(src)
    init = src[: next(b.end for b in top if b.type == b"moov")]
    moof = next(b for b in top if b.type == b"moof")
    mdat = next(b for b in top if b.type == b"mdat")
    kids = boxes(src, moof.start + 8, moof.end)
    traf = next(b for b in kids if b.type == b"traf")
    parts = {p.type: p for p in boxes(src, traf.start + 8, traf.end)}
    _, _, default_duration, default_size = tfhd_fields(parts[b"tfhd"].body(src))
    trun = Trun.parse(parts[b"trun"].body(src))
    tfdt = bytearray(src[parts[b"tfdt"].start : parts[b"tfdt"].end])
    version, fmt = tfdt[8], (">Q" if tfdt[8] == 1 else ">I")
    base = struct.unpack_from(fmt, tfdt, 12)[0]
    half = len(trun.entries) // 2
    first, second = trun.entries[:half], trun.entries[half:]
    ticks = sum(d if d is not None else default_duration for d, _, _, _ in first)
    nbytes = sum(s if s is not None else default_size for _, s, _, _ in first)
    tfhd = src[parts[b"tfhd"].start : parts[b"tfhd"].end]
    assert version in (0, 1)

    def tfdt_at(value: int) -> bytes:
        out = bytearray(tfdt)
        struct.pack_into(fmt, out, 12, value)
        return bytes(out)

    def moof_with(data_start: int) -> bytes:
        t1 = _box(
            b"traf", tfhd + tfdt_at(base) + Trun(trun.flags, data_start, trun.first_flags, first).build()
        )
        t2 = _box(
            b"traf",
            tfhd + tfdt_at(base + ticks) + Trun(trun.flags, data_start + nbytes, None, second).build(),
        )
        head = b"".join(src[b.start : b.end] for b in kids if b.type != b"traf")
        return _box(b"moof", head + t1 + t2)

    size = len(moof_with(0))
    return init, moof_with(size + 8) + src[mdat.start :]


@pytest.fixture
def two_traf_source(tmp_path: Path) -> tuple[bytes, bytes]:
    """A 4-second frame-coded source (30 fps, keyframe every 15 frames) in one fMP4 fragment whose video
    is in two track fragments (samples 0-59 and 60-119); it decodes to frames 0..119 like the original."""
    src = tmp_path / "src.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", pattern_graph(4, 160, 96, 30),
         "-c:v", "libx264", "-bf", "2", "-g", "15", "-keyint_min", "15", "-sc_threshold", "0",
         "-pix_fmt", "yuv420p", "-movflags", "+empty_moov+default_base_moof",
         "-frag_duration", "8000000", "-min_frag_duration", "8000000", str(src)],
        check=True, timeout=60,
    )  # fmt: skip
    init, frags = two_traf_fragment(src.read_bytes())
    assert fmp4.video_sample_counts(frags, fmp4.video_track_id(init)) == [120]
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(init + frags)
    assert read_frames(whole) == list(range(120))  # a sound source
    return init, frags


def test_from_sample_never_drops_samples_from_several_video_trafs(two_traf_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``fmp4.from_sample(init, fragments, 30)`` on a fragment whose video is in two track fragments drops
    the first 30 samples from *each* video traf (``_rewrite_moof``: ``mine = track == track_id and
    drop > 0`` holds for both), so samples 60-89 are gone too: the cut decodes to frames 30..59, then
    frame 59 held 30 times, then 90..119. Right: frames 30..119 (only the track's first 30 samples
    dropped), or None ("a shape this module does not rewrite").
    Cause: pipeline/fmp4.py:_rewrite_moof (the drop applied per traf, not per track)."""
    init, frags = two_traf_source
    cut = fmp4.from_sample(init, frags, 30)
    if cut is not None:
        part = tmp_path / "cut.mp4"
        part.write_bytes(cut)
        assert read_frames(part) == list(range(30, 120))


def test_a_two_traf_fmp4_source_is_cut_frame_exactly(two_traf_source, tmp_path: Path, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    """End to end (``cutting.cut_from_hls`` from a loopback CDN, fMP4 HLS: init.mp4 + one 4 s segment
    whose video is in two track fragments, a legal shape: ISO/IEC 14496-12 allows zero or more track
    fragments per track): a window 1.5-2.6 s (33 frames) is cut without any error and the clip shows
    source frames 45..59 and then frame 59 frozen 18 times, instead of 45..77. A silently wrong clip
    recorded as ok. Right: frames 45..77, or the line refused (SourceInvalid -> fallback).
    Cause: pipeline/fmp4.py:_rewrite_moof via pipeline/hls_inputs.py:HlsInputs._fmp4_from_sample (the
    planner's picks come from the uncut run's timestamps; the cut run lacks samples 60-89)."""
    init, frags = two_traf_source
    root = tmp_path / "cdn"
    folder = root / "hls" / "two"
    folder.mkdir(parents=True)
    (folder / "init.mp4").write_bytes(init)
    (folder / "seg0.m4s").write_bytes(frags)
    (folder / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        '#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4.0,\nseg0.m4s\n#EXT-X-ENDLIST\n'
    )
    settings = load_settings(
        {
            "CLIPLINE_REDIS_URL": redis_url,
            "CLIPLINE_WORK_DIR": str(tmp_path / "work"),
            "CLIPLINE_MEDIA_DIR": str(tmp_path / "media"),
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
            "CLIPLINE_HTTP_TIMEOUT_S": "5",
            "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",
        }
    )
    with LoopbackCDN(root) as cdn:
        clip = {"video_id": "v", "start_ms": 1500, "end_ms": 2600, "hls_url": cdn.url("hls/two/index.m3u8")}
        req = parse_request(
            {
                "job_id": f"aetraf-{secrets.token_hex(5)}",
                "output": {"width": 160, "height": 96, "fps": 30},
                "lines": [{"text": "l0", "start_ms": 0, "end_ms": 1100, "clip": clip}],
            },
            allowed_hosts=frozenset(),
        )
        view = JobView(req, build_slots(req))
        try:
            record = cutting.cut_from_hls(Context(settings), view, 0)
        except ClipLineError:
            return  # refused: acceptable
        shown = read_frames(Path(record.path or ""))
        assert shown == list(range(45, 78)), json.dumps(shown)
