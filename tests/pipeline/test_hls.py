"""Playlist parsing and segment selection."""

from __future__ import annotations

import pytest

from pipeline.errors import SourceInvalid
from pipeline.hls import MasterPlaylist, MediaPlaylist, parse_playlist, select_segments

MEDIA = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:2.000000,
seg_000.ts
#EXTINF:2.000000,
seg_001.ts
#EXTINF:2.000000,
/abs/seg_002.ts
#EXTINF:1.500000,
http://other.example/seg_003.ts
#EXT-X-ENDLIST
"""


def media() -> MediaPlaylist:
    p = parse_playlist(MEDIA, "http://cdn.example/v1/index.m3u8")
    assert isinstance(p, MediaPlaylist)
    return p


def test_media_playlist_absolute_uris_and_times() -> None:
    p = media()
    assert [s.uri for s in p.segments] == [
        "http://cdn.example/v1/seg_000.ts",
        "http://cdn.example/v1/seg_001.ts",
        "http://cdn.example/abs/seg_002.ts",
        "http://other.example/seg_003.ts",
    ]
    assert [s.start_s for s in p.segments] == [0.0, 2.0, 4.0, 6.0]
    assert p.duration_s == 7.5 and p.ended
    assert MediaPlaylist.from_json(p.to_json()) == p


@pytest.mark.parametrize(
    ("start", "end", "seqs"),
    [
        (0, 900, [0]),
        (700, 1900, [0]),
        (1400, 2900, [0, 1]),
        (2000, 4000, [1]),
        (3999, 4001, [1, 2]),
        (6000, 9000, [3]),
    ],
)
def test_only_overlapping_segments_are_selected(start: int, end: int, seqs: list[int]) -> None:
    assert [s.seq for s in select_segments(media(), start, end)] == seqs


def test_window_beyond_the_source_is_invalid() -> None:
    with pytest.raises(SourceInvalid, match="outside the source"):
        select_segments(media(), 8000, 9000)


def test_master_playlist_picks_the_smallest_variant_tall_enough() -> None:
    text = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360
360/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720
720/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080
1080/index.m3u8
"""
    p = parse_playlist(text, "https://cdn.example/v/master.m3u8")
    assert isinstance(p, MasterPlaylist)
    assert p.pick(720).uri == "https://cdn.example/v/720/index.m3u8"
    assert p.pick(2160).uri == "https://cdn.example/v/1080/index.m3u8"


def test_a_draft_reads_the_rendition_of_the_height_it_writes() -> None:
    from pipeline.models import OutputProfile

    text = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360
360/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720
720/index.m3u8
"""
    p = parse_playlist(text, "https://cdn.example/v/master.m3u8")
    assert isinstance(p, MasterPlaylist)
    final = OutputProfile(width=1280, height=720, fps=30)
    draft = OutputProfile(width=1280, height=720, fps=30, quality="draft")
    assert p.pick(final.rendition_height).uri.endswith("/720/index.m3u8")
    assert p.pick(draft.rendition_height).uri.endswith("/360/index.m3u8")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("not a playlist", "no #EXTM3U"),
        ("#EXTM3U\n#EXTINF:2,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n", "file URI"),
        ("#EXTM3U\n#EXTINF:2,\nftp://h/x.ts\n#EXT-X-ENDLIST\n", "ftp URI"),
        ('#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k"\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n', "SAMPLE-AES"),
        (
            '#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="skd://x",KEYFORMAT="com.apple.streamingkeydelivery"\n'
            "#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n",
            "DRM",
        ),
        ("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n", "without a URI"),
        ("#EXTM3U\n#EXT-X-ENDLIST\n", "no segments"),
        (
            "#EXTM3U\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:2,\n#EXT-X-BYTERANGE:2256@376\na.ts\n#EXT-X-ENDLIST\n",
            "I-frame playlist",
        ),
        ("#EXTM3U\n#EXTINF:2,\nhttp://cdn.example:99999/a.ts\n#EXT-X-ENDLIST\n", "unusable URI.*Port out"),
        ("#EXTM3U\n#EXTINF:2,\nhttp://cdn.example:-1/a.ts\n#EXT-X-ENDLIST\n", "unusable URI"),
        ("#EXTM3U\n#EXTINF:2,\na\x7fb.ts\n#EXT-X-ENDLIST\n", "unusable URI.*control character"),
        ("#EXTM3U\n" + "#EXTINF:0.01,\na.ts\n" * 50_001 + "#EXT-X-ENDLIST\n", "50001 segments, more than"),
        ("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n", "MEDIA-SEQUENCE -1"),
        (f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:{2**64}\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n", "2\\^64-1"),
        ("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:" + "9" * 300 + "\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n", "2\\^64-1"),
        (
            "#EXTM3U\n#EXT-X-DISCONTINUITY-SEQUENCE:-5\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n",
            "DISCONTINUITY-SEQUENCE",
        ),
        (
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXTINF:4,\ns13.ts\n#EXT-X-ENDLIST\n",
            "delta update",
        ),
        ("#EXTM3U\n#EXTINF:abc,\na.ts\n#EXT-X-ENDLIST\n", "malformed playlist.*abc"),
        ("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n", "malformed playlist"),
        ("#EXTM3U\n#EXTINF:-2,\na.ts\n#EXT-X-ENDLIST\n", "absurd #EXTINF"),
        ("#EXTM3U\n#EXTINF:0,\na.ts\n#EXT-X-ENDLIST\n", "absurd #EXTINF"),
        ("#EXTM3U\n#EXTINF:nan,\na.ts\n#EXT-X-ENDLIST\n", "absurd #EXTINF"),
        ("#EXTM3U\n#EXTINF:inf,\na.ts\n#EXT-X-ENDLIST\n", "absurd #EXTINF"),
        ("#EXTM3U\n#EXTINF:2,\na.ts\n", "without #EXT-X-ENDLIST"),
        ("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.ts\n", "EVENT playlist without"),
        ("#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:100\na.ts\n#EXT-X-ENDLIST\n", "without an offset"),
        ("#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:x@1\na.ts\n#EXT-X-ENDLIST\n", "BYTERANGE"),
        ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0xZZ\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n', "IV"),
    ],
)
def test_hostile_or_broken_playlists_are_refused(body: str, match: str) -> None:
    with pytest.raises(SourceInvalid, match=match):
        parse_playlist(body, "http://cdn.example/v/index.m3u8")


FEATURES = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="main.mp4",BYTERANGE="800@0"
#EXT-X-KEY:METHOD=AES-128,URI="../keys/k1.key",IV=0x000102030405060708090a0b0c0d0e0f
#EXTINF:2.0,
#EXT-X-BYTERANGE:1000@800
main.mp4
#EXTINF:2.0,
#EXT-X-BYTERANGE:1200
main.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="other-init.mp4"
#EXT-X-KEY:METHOD=AES-128,URI="k2.key"
#EXTINF:1.5,
other.m4s
#EXT-X-KEY:METHOD=NONE
#EXT-X-GAP
#EXTINF:2,
gap.m4s
#EXT-X-ENDLIST
"""


def test_byte_ranges_maps_keys_discontinuities_and_gaps_are_read() -> None:
    p = parse_playlist(FEATURES, "http://cdn.example/v/index.m3u8")
    assert isinstance(p, MediaPlaylist)
    a, b, c, d = p.segments
    assert [s.seq for s in p.segments] == [10, 11, 12, 13]
    # a BYTERANGE without an offset continues the previous range of the same URI
    assert (a.offset, a.length, b.offset, b.length) == (800, 1000, 1800, 1200)
    assert a.part.byte_range == (800, 1799) and b.part.byte_range == (1800, 2999)
    assert a.init is not None and a.init.byte_range == (0, 799) and a.init.uri.endswith("/v/main.mp4")
    assert c.init is not None and c.init.byte_range is None and c.init.uri.endswith("/v/other-init.mp4")
    assert [s.discontinuity for s in p.segments] == [0, 0, 1, 1]
    assert [s.container for s in p.segments] == ["mp4"] * 4
    assert a.key is not None and a.key.uri == "http://cdn.example/keys/k1.key"
    assert a.key.iv_for(10) == bytes(range(16))
    assert c.key is not None and c.key.iv is None and c.key.iv_for(12) == (12).to_bytes(16, "big")
    assert d.key is None and d.gap and not c.gap
    assert p.first_of_discontinuity(1) == c and p.following(a) == b and p.preceding(a) is None
    assert MediaPlaylist.from_json(p.to_json()) == p


def test_a_window_needing_too_many_segments_is_refused() -> None:
    body = "#EXTM3U\n" + "#EXTINF:0.01,\na.ts\n" * 500 + "#EXT-X-ENDLIST\n"
    p = parse_playlist(body, "http://cdn.example/v/index.m3u8")
    assert isinstance(p, MediaPlaylist)
    with pytest.raises(SourceInvalid, match="spans 200 segments"):
        select_segments(p, 0, 2000)


def test_master_skips_renditions_whose_video_codec_cannot_be_decoded() -> None:
    text = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="aud"
360/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS="hvc1.1.6.L93.B0,ec-3",AUDIO="aud"
720/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="vvc1.1.L51.CQA.O1+3"
720vvc/index.m3u8
"""
    from pipeline.hls import undecodable_codecs

    p = parse_playlist(text, "https://cdn.example/v/master.m3u8")
    assert isinstance(p, MasterPlaylist)
    assert [v.codecs for v in p.variants][0] == ("avc1.64001e", "mp4a.40.2")
    with_hevc = frozenset({"h264", "hevc", "aac"})
    without_hevc = frozenset({"h264", "aac"})
    assert undecodable_codecs(("hvc1.1.6.L93.B0", "ec-3"), with_hevc) == []
    assert undecodable_codecs(("vvc1.1.L51.CQA.O1+3",), with_hevc) == ["vvc1.1.L51.CQA.O1+3"]
    assert p.pick(720, lambda v: not undecodable_codecs(v.codecs, with_hevc)).uri.endswith("/720/index.m3u8")
    picked = p.pick(720, lambda v: not undecodable_codecs(v.codecs, without_hevc))
    assert picked.uri.endswith("/360/index.m3u8")
    with pytest.raises(SourceInvalid, match="no rendition has codecs"):
        p.pick(720, lambda v: False)


def test_master_never_picks_an_audio_only_rendition() -> None:
    # Given a master without RESOLUTION whose audio-only rendition has the highest bandwidth
    text = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS="avc1.64001e,mp4a.40.2"
video/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="mp4a.40.2"
audio/index.m3u8
"""
    p = parse_playlist(text, "https://cdn.example/v/master.m3u8")
    assert isinstance(p, MasterPlaylist)
    # Then the video rendition is picked, whatever the height asked for
    assert p.pick(90).uri.endswith("/video/index.m3u8")
    assert p.pick(2160).uri.endswith("/video/index.m3u8")
    # and a master of audio renditions only is refused, saying so
    audio = parse_playlist(text.replace("avc1.64001e,", ""), "https://cdn.example/v/master.m3u8")
    assert isinstance(audio, MasterPlaylist)
    with pytest.raises(SourceInvalid, match="audio only"):
        audio.pick(90)


LOW_LATENCY = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-PROGRAM-DATE-TIME:2026-12-02T10:00:00.000Z
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.0,
a100.m4s
#EXT-X-DATERANGE:ID="ad",START-DATE="2026-12-02T10:00:02.000Z",DURATION=2.0
#EXT-X-PART:DURATION=1.0,URI="a101.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI="a101.1.m4s"
#EXTINF:2.0,
a101.m4s
#EXT-X-PART:DURATION=0.5,URI="a102.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="a102.1.m4s"
"""


def test_a_low_latency_live_playlist_is_refused_as_live_not_as_broken() -> None:
    with pytest.raises(SourceInvalid, match="LIVE playlist without #EXT-X-ENDLIST"):
        parse_playlist(LOW_LATENCY, "http://cdn.example/v/index.m3u8")


def test_a_finished_low_latency_playlist_lists_its_whole_segments_not_their_parts() -> None:
    body = LOW_LATENCY.split("#EXT-X-PART:DURATION=0.5")[0] + "#EXT-X-ENDLIST\n"
    p = parse_playlist(body, "http://cdn.example/v/index.m3u8")
    assert isinstance(p, MediaPlaylist)
    assert [(s.seq, s.uri.rsplit("/", 1)[1], s.start_s) for s in p.segments] == [
        (100, "a100.m4s", 0.0),
        (101, "a101.m4s", 2.0),
    ]
    assert all(s.init is not None and s.init.uri.endswith("/init.mp4") for s in p.segments)
