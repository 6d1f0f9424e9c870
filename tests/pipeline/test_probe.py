"""probe.video_packets: what a failed ffprobe means for the clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import FFmpegFailed, SourceInvalid, is_transient
from pipeline.probe import video_packets


def fake_ffprobe(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "ffprobe"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


def test_an_ffprobe_killed_from_outside_is_transient(tmp_path: Path) -> None:
    probe = fake_ffprobe(tmp_path, "kill -9 $$")
    with pytest.raises(FFmpegFailed, match="ffprobe was killed by signal 9 reading run0.ts") as err:
        video_packets(probe, tmp_path / "run0.ts", "mpegts")
    assert is_transient(err.value)


def test_a_file_without_video_timestamps_is_refused_for_good(tmp_path: Path) -> None:
    probe = fake_ffprobe(tmp_path, 'echo \'{"streams": [], "packets": []}\'; echo "no video" >&2')
    with pytest.raises(SourceInvalid, match="has no video timestamps to cut on") as err:
        video_packets(probe, tmp_path / "run0.ts", "mpegts")
    assert not is_transient(err.value)


def test_frames_without_a_keyframe_are_refused_unless_the_caller_looks_further_back(tmp_path: Path) -> None:
    listing = (
        '{"streams": [{"time_base": "1/90000", "r_frame_rate": "30/1", "codec_name": "h264"}],'
        ' "packets": [{"pts": "3000", "flags": "__", "pos": "564"}, {"pts": "6000", "flags": "__"}]}'
    )
    probe = fake_ffprobe(tmp_path, f"echo '{listing}'")
    with pytest.raises(SourceInvalid, match="run0.ts has no keyframe to start decoding at"):
        video_packets(probe, tmp_path / "run0.ts", "mpegts")
    got = video_packets(probe, tmp_path / "run0.ts", "mpegts", keyless=True)
    assert [(p.pts, p.key, p.pos) for p in got.packets] == [(3000, False, 564), (6000, False, None)]
