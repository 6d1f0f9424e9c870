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


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("not a playlist", "no #EXTM3U"),
        ("#EXTM3U\n#EXTINF:2,\nfile:///etc/passwd\n", "file URI"),
        ("#EXTM3U\n#EXTINF:2,\nftp://h/x.ts\n", "ftp URI"),
        ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k"\n#EXTINF:2,\na.ts\n', "encrypted"),
        ("#EXTM3U\n#EXT-X-ENDLIST\n", "no segments"),
        ("#EXTM3U\n#EXTINF:abc,\na.ts\n", "bad #EXTINF"),
    ],
)
def test_hostile_or_broken_playlists_are_refused(body: str, match: str) -> None:
    with pytest.raises(SourceInvalid, match=match):
        parse_playlist(body, "http://cdn.example/v/index.m3u8")
