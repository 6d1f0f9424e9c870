"""The Python MPEG-TS reader lists exactly what ffprobe lists, or declines: never a different packet.

Checked on every MPEG-TS video segment of the HLS corpus (ffmpeg's muxers,
GStreamer's, Shaka Packager's, Bento4's and nginx-rtmp's), on consecutive
segments joined as a clip joins them, and on streams made here with the forms
the reader must leave to ffprobe (recovery points, other codecs). A decline
costs one ffprobe; a wrong key flag or PTS would cost a wrong frame.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline import mpegts, ts_packets
from pipeline.probe import Packet, video_packets
from tests.media import corpus
from tests.pipeline.test_ts_packets import read_damaged

from .conftest import CACHE

pytestmark = pytest.mark.integration


def ffprobe_packets(path: Path) -> list[Packet]:
    return list(video_packets("ffprobe", path, "mpegts", keyless=True).packets)


def carries_video(data: bytes) -> bool:
    """False for a segment of an audio-only rendition (its PMT lists no video stream); True for one
    with video, and for one that cannot be read as MPEG-TS (AES-128 encrypted)."""
    try:
        mpegts.check(data, "segment")
    except mpegts.NotTransportStream:
        return True
    return bool(mpegts.video_stream_types(data))


#: Variants every segment of which the reader leaves to ffprobe, by design: AES-128 segments are
#: encrypted (the pipeline reads them decrypted), and x264's open GOPs start at recovery points (ffmpeg's
#: parser flags those pictures as keyframes; the reader does not follow recovery-point SEIs), as does
#: x264's periodic intra refresh (a recovery-point SEI on a P-frame every 15), as does interlaced H.264;
#: MPEG-2 video (stream type
#: 0x02) and HEVC (0x24) are other codecs than the H.264 it reads (``OTHER_CODECS``: left out of the
#: count of H.264 segments it declines).
OTHER_CODECS = {"mpeg2_ts", "mpeg2_ts_open_gop", "hevc_ts", "hevc_ts_open_gop", "mpeg2_anamorphic"}
OTHER_CODECS |= {"mpeg2_interlaced"}
DECLINED = {"aes", "bento4_aes", "open_gop", "shaka_open_gop", "bento4_open_gop", "x264_intra_refresh"}
DECLINED |= {"h264_interlaced"}  # its SPS allows interlaced pictures: ffprobe says whether they are
DECLINED |= {"h264_pq_ts"}  # its SPS's VUI says PQ: ffprobe names the colour, for the tone mapping
DECLINED |= OTHER_CODECS


def corpus_segments() -> dict[str, list[Path]]:
    """Each corpus variant's video segments (audio-only renditions' left out), in name order."""
    base = corpus.build(CACHE.parent / "hls-corpus")
    folders = sorted(p for p in (base / "hls").iterdir() if p.is_dir())
    found = {f.name: [s for s in sorted(f.rglob("*.ts")) if carries_video(s.read_bytes())] for f in folders}
    return {name: segs for name, segs in found.items() if segs}


def test_every_corpus_segment_and_join_reads_as_ffprobe_lists_it_or_is_declined(tmp_path: Path) -> None:
    read = declined = 0
    for name, segments in corpus_segments().items():
        datas = [s.read_bytes() for s in segments]
        pairs = [mpegts.join(datas[i : i + 2]) for i in range(len(datas) - 1)]
        for n, data in enumerate([*datas, *pairs]):
            mine = ts_packets.video_packets(data)
            assert (mine is None) == (name in DECLINED), (name, n)
            if mine is None:
                declined += name not in OTHER_CODECS
                continue
            path = tmp_path / f"{name}-{n}.ts"
            path.write_bytes(data)
            ref = ffprobe_packets(path)
            if mpegts.suffix_reads_the_same([p.pts for p in mine]):  # what a clip uses
                assert mine == ref, (name, n)
                read += 1
            else:  # near the wrap: ffmpeg corrects the PTS, the clip asks ffprobe
                assert [p.pts % mpegts.PTS_WRAP for p in ref] == [p.pts for p in mine], (name, n)
                assert [(p.key, p.pos) for p in ref] == [(p.key, p.pos) for p in mine], (name, n)
                declined += 1
    assert read >= 100
    assert declined <= read // 3


def make(tmp_path: Path, name: str, *encode: str, size: str = "160x96") -> Path:
    out = tmp_path / f"{name}.ts"
    src = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d=3"]
    subprocess.run(["ffmpeg", "-v", "error", *src, *encode, "-f", "mpegts", str(out)], check=True)
    return out


@pytest.mark.parametrize(
    "name, encode",
    [
        ("slices", ["-c:v", "libx264", "-x264-params", "slices=4:keyint=30"]),
        ("no_aud", ["-c:v", "libx264", "-bsf:v", "h264_metadata=aud=remove"]),
        ("b_frames", ["-c:v", "libx264", "-bf", "3", "-x264-params", "keyint=20:scenecut=0"]),
    ],
)
def test_other_h264_forms_read_as_ffprobe_lists_them(tmp_path: Path, name: str, encode: list[str]) -> None:
    path = make(tmp_path, name, *encode)
    mine = ts_packets.video_packets(path.read_bytes())
    assert mine is not None
    assert mine == ffprobe_packets(path)


@pytest.mark.parametrize(
    "name, encode",
    [
        # non-IDR pictures behind a recovery-point SEI: ffmpeg flags them as keyframes; left to ffprobe
        ("open_gop", ["-c:v", "libx264", "-x264-params", "open-gop=1:keyint=30"]),
        ("intra_refresh", ["-c:v", "libx264", "-x264-params", "intra-refresh=1:keyint=30"]),
        ("hevc", ["-c:v", "libx265", "-x265-params", "log-level=error"]),
        ("mpeg2", ["-c:v", "mpeg2video"]),
        # an SPS that allows interlaced pictures (MBAFF): ffprobe says whether they are (field_order)
        ("mbaff", ["-c:v", "libx264", "-flags", "+ilme+ildct", "-x264-params", "interlaced=1"]),
    ],
)
def test_forms_the_reader_does_not_follow_are_declined(tmp_path: Path, name: str, encode: list[str]) -> None:
    path = make(tmp_path, name, *encode)
    assert ts_packets.video_packets(path.read_bytes()) is None
    assert ffprobe_packets(path)  # ffprobe reads them: the caller falls back to it


def test_damaged_real_segments_never_raise_they_read_or_decline() -> None:
    read_damaged(corpus_segments()["ts"][1].read_bytes(), seed=11, times=2000)
