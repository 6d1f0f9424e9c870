"""The test media generator: frame codes survive encoding, HLS is segmented as asked, the set is cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipline.dev.samples import (
    NUMBER_BITS,
    SourceSpec,
    TraceError,
    build_sample_set,
    count_frames,
    decode_code,
    frame_code,
    make_hls_source,
    read_frames,
)
from pipeline.hls import MediaPlaylist, parse_playlist

pytestmark = pytest.mark.integration  # runs ffmpeg


def test_frame_codes_are_absolute_and_checked() -> None:
    assert [decode_code(frame_code(n)) for n in (0, 1, 25, 1799, (1 << NUMBER_BITS) - 1)] == [
        0,
        1,
        25,
        1799,
        (1 << NUMBER_BITS) - 1,
    ]
    with pytest.raises(TraceError):
        decode_code(frame_code(7) ^ 1)  # one block misread: the check bits disagree
    with pytest.raises(ValueError):
        frame_code(1 << NUMBER_BITS)


def test_hls_source_carries_its_frame_numbers_and_segment_length(tmp_path: Path) -> None:
    playlist = make_hls_source(tmp_path, "v", duration_s=3.0, width=160, height=90, fps=30, segment_s=1.0)
    parsed = parse_playlist(playlist.read_text(), "http://127.0.0.1/hls/v/index.m3u8")
    assert isinstance(parsed, MediaPlaylist)
    assert len(parsed.segments) == 3
    assert all(abs(s.duration_s - 1.0) < 0.01 for s in parsed.segments)
    segment = playlist.parent / "seg_00001.ts"  # frames 30..59
    assert count_frames(segment) == 30
    assert read_frames(segment) == list(range(30, 60))


def test_sample_set_is_built_once_and_reused(tmp_path: Path) -> None:
    specs = [SourceSpec("h", 2.0), SourceSpec("l", 1.0, hls=False, local=True)]
    first = build_sample_set(tmp_path, specs, song_s=2.0, width=160, height=90, fps=30, segment_s=1.0)
    assert (first.root / "hls" / "h" / "index.m3u8").is_file()
    assert (first.media_dir / "l.mp4").is_file() and not (first.root / "hls" / "l").exists()
    assert first.song.is_file() and count_frames(first.media_dir / "l.mp4") == 30
    stamp = first.song.stat().st_mtime_ns
    again = build_sample_set(tmp_path, specs, song_s=2.0, width=160, height=90, fps=30, segment_s=1.0)
    assert again == first and again.song.stat().st_mtime_ns == stamp  # cached: not made again
    other = build_sample_set(tmp_path, specs, song_s=3.0, width=160, height=90, fps=30, segment_s=1.0)
    assert other.root != first.root  # other parameters, another cache entry


def test_hls_source_may_have_several_keyframes_per_segment(tmp_path: Path) -> None:
    from pipeline.probe import video_packets

    playlist = make_hls_source(
        tmp_path, "v", duration_s=2.0, width=160, height=90, fps=30, segment_s=1.0, keyframe_s=0.5
    )
    parsed = parse_playlist(playlist.read_text(), "http://127.0.0.1/hls/v/index.m3u8")
    assert isinstance(parsed, MediaPlaylist) and len(parsed.segments) == 2
    probe = video_packets("ffprobe", playlist.parent / "seg_00001.ts", "mpegts")
    first = min(p.pts for p in probe.packets)
    assert sorted((p.pts - first) // 3000 for p in probe.packets if p.key) == [0, 15]
