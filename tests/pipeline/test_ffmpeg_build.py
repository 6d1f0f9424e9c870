"""ffmpeg_build: what the installed ffmpeg can decode and filter, and HDR cut as it is without zimg."""

from __future__ import annotations

from pathlib import Path

import structlog

from pipeline import ffmpeg_build
from pipeline.ffmpeg_args import Colour, CutInput

#: The head of ``ffmpeg -filters`` as ffmpeg 5.1 prints it: a legend, then one filter a line.
FILTERS = """Filters:
  T.. = Timeline support
  .S. = Slice threading
  ..C = Command support
  A = Audio input/output
  V = Video input/output
  N = Dynamic number and/or type of input/output
  | = Source or sink filter
 ... abench            A->A       Benchmark part of a filtergraph.
 TSC bwdif             V->V       Deinterlace the input image.
 ..C scale             V->V       Scale the input video size and/or convert the image format.
 .S. tonemap           V->V       Conversion to/from different dynamic ranges.
 ... buffersink        V->|       Buffer video frames, and make them available to the end of the filter chain.
"""
DECODERS = """Decoders:
 V..... = Video
 A..... = Audio
 ------
 V....D h264                 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10
 VFS..D hevc                 HEVC (High Efficiency Video Coding)
 A....D aac                  AAC (Advanced Audio Coding)
"""


def fake_ffmpeg(tmp_path: Path, filters: str = FILTERS, decoders: str = DECODERS) -> str:
    (tmp_path / "filters.txt").write_text(filters)
    (tmp_path / "decoders.txt").write_text(decoders)
    exe = tmp_path / "ffmpeg"
    exe.write_text(
        "#!/bin/sh\n"
        f'case "$2" in -filters) cat {tmp_path}/filters.txt;; -decoders) cat {tmp_path}/decoders.txt;; esac\n'
    )
    exe.chmod(0o755)
    return str(exe)


def test_the_tables_are_read_without_their_legends(tmp_path: Path) -> None:
    ffmpeg = fake_ffmpeg(tmp_path)
    assert ffmpeg_build.filters(ffmpeg) == {"abench", "bwdif", "scale", "tonemap", "buffersink"}
    assert ffmpeg_build.decoders(ffmpeg) == {"h264", "hevc", "aac"}


def test_hdr_is_cut_as_it_is_and_said_so_when_ffmpeg_has_no_zscale(tmp_path: Path) -> None:
    ffmpeg = fake_ffmpeg(tmp_path)  # tonemap, but no zscale (an ffmpeg built without zimg)
    hdr = CutInput(tmp_path / "run0.mp4", "mp4", colour=Colour("smpte2084", "bt2020", "bt2020nc"))
    sdr = CutInput(tmp_path / "run1.mp4", "mp4")
    with structlog.testing.capture_logs() as logs:
        got = ffmpeg_build.with_tone_mapping(ffmpeg, [hdr, sdr])
        assert ffmpeg_build.with_tone_mapping(ffmpeg, [sdr]) == [sdr]  # nothing to say for SDR
    assert [i.tone_map for i in got] == [False, False] and [i.path for i in got] == [hdr.path, sdr.path]
    warned = [e for e in logs if e["event"] == "clip.hdr_not_tone_mapped"]
    assert len(warned) == 1 and warned[0]["transfer"] == "smpte2084" and "zscale" in warned[0]["why"]
    assert "tonemap" not in warned[0]["why"]


def test_the_installed_ffmpeg_can_tone_map() -> None:
    # the filters the HDR cut uses are in the ffmpeg that ./dev.sh and the Docker image install
    assert {"zscale", "tonemap"} <= ffmpeg_build.filters("ffmpeg")
    hdr = CutInput(Path("run0.mp4"), "mp4", colour=Colour("arib-std-b67"))
    assert ffmpeg_build.with_tone_mapping("ffmpeg", [hdr]) == [hdr]
