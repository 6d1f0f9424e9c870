"""``#EXT-X-DEFINE`` variables: substituted where RFC 8216bis puts them, refused where it says to fail."""

from __future__ import annotations

import pytest

from pipeline import hls_variables
from pipeline.errors import SourceInvalid
from pipeline.hls import MasterPlaylist, MediaPlaylist, parse_playlist

MASTER_URL = "http://cdn.example/v/master.m3u8?token=a%2Bb%3D&x=1"
MASTER = """#EXTM3U
#EXT-X-VERSION:11
#EXT-X-DEFINE:NAME="rendition",VALUE="hi,res"
#EXT-X-DEFINE:QUERYPARAM="token"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="{$rendition}/audio.m3u8?token={$token}"
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.64000d",AUDIO="aud"
{$rendition}/index.m3u8?token={$token}
"""
MEDIA = """#EXTM3U
#EXT-X-VERSION:11
#EXT-X-DEFINE:IMPORT="rendition"
#EXT-X-DEFINE:QUERYPARAM="token"
#EXT-X-DEFINE:NAME="seg",VALUE="s{$rendition}"
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI="init.mp4?t={$token}"
#EXT-X-KEY:METHOD=AES-128,URI="/keys/{$rendition}.key"
#EXTINF:2.0,{$not-a-uri: titles are not substituted}
# {$comment} lines are left alone
{$seg}-0.m4s?token={$token}
#EXT-X-ENDLIST
"""


def master() -> MasterPlaylist:
    parsed = parse_playlist(MASTER, MASTER_URL)
    assert isinstance(parsed, MasterPlaylist)
    return parsed


def media(text: str = MEDIA, url: str = "http://cdn.example/v/hi,res/index.m3u8?token=T") -> MediaPlaylist:
    parsed = parse_playlist(text, url, master())
    assert isinstance(parsed, MediaPlaylist)
    return parsed


def test_a_master_substitutes_its_values_and_the_query_parameter_percent_decoded() -> None:
    m = master()
    assert [v.uri for v in m.variants] == ["http://cdn.example/v/hi,res/index.m3u8?token=a+b="]
    assert dict(m.variables) == {"rendition": "hi,res", "token": "a+b="}


def test_a_media_playlist_imports_from_its_master_and_substitutes_uris_and_quoted_attributes() -> None:
    p = media()
    (segment,) = p.segments
    # one pass: the value of seg held a reference and is taken as it is
    assert segment.uri == "http://cdn.example/v/hi,res/s{$rendition}-0.m4s?token=T"
    assert segment.init is not None and segment.init.uri == "http://cdn.example/v/hi,res/init.mp4?t=T"
    assert segment.key is not None and segment.key.uri == "http://cdn.example/keys/hi,res.key"


def test_hexadecimal_attributes_are_substituted() -> None:
    text = MEDIA.replace('"token"', '"token"\n#EXT-X-DEFINE:NAME="iv",VALUE="0102"', 1).replace(
        '.key"', '.key",IV=0x{$iv}'
    )
    parsed = parse_playlist(text, "http://cdn.example/v/hi,res/index.m3u8?token=T", master())
    assert isinstance(parsed, MediaPlaylist)
    key = parsed.segments[0].key
    assert key is not None and key.iv == bytes(14) + b"\x01\x02"


@pytest.mark.parametrize(
    ("text", "url", "imported", "says"),
    [
        ("#EXTM3U\n#EXTINF:1,\n{$nope}.ts\n", "http://h/a.m3u8", None, "{$nope} with no #EXT-X-DEFINE"),
        (  # a reference before its definition
            '#EXTM3U\n#EXTINF:1,\n{$a}.ts\n#EXT-X-DEFINE:NAME="a",VALUE="x"\n',
            "http://h/a.m3u8",
            None,
            "{$a} with no #EXT-X-DEFINE",
        ),
        (
            '#EXTM3U\n#EXT-X-DEFINE:NAME="a",VALUE="x"\n#EXT-X-DEFINE:NAME="a",VALUE="y"\n',
            "http://h/a",
            None,
            "'a' twice",
        ),
        (
            '#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="token"\n',
            "http://h/a.m3u8?other=1",
            None,
            "no such query parameter",
        ),
        ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="t"\n', "http://h/a.m3u8?t=", None, "is empty or holds"),
        ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="t"\n', "http://h/a.m3u8?t", None, "is empty or holds"),
        ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="t"\n', "http://h/a.m3u8?t=a%22b", None, "is empty or holds"),
        ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="t"\n', "http://h/a.m3u8?t=a%0Ab", None, "is empty or holds"),
        ('#EXTM3U\n#EXT-X-DEFINE:IMPORT="a"\n', "http://h/a.m3u8", None, "not loaded from a master"),
        ('#EXTM3U\n#EXT-X-DEFINE:IMPORT="a"\n', "http://h/a.m3u8", {"b": "1"}, "defines no such variable"),
        ('#EXTM3U\n#EXT-X-DEFINE:NAME="a b",VALUE="x"\n', "http://h/a.m3u8", None, "invalid variable"),
        ('#EXTM3U\n#EXT-X-DEFINE:NAME="a"\n', "http://h/a.m3u8", None, "without a VALUE"),
        ('#EXTM3U\n#EXT-X-DEFINE:VALUE="a"\n', "http://h/a.m3u8", None, "without NAME, QUERYPARAM or IMPORT"),
    ],
)
def test_what_the_rfc_says_to_fail_is_refused_naming_it(
    text: str, url: str, imported: dict[str, str] | None, says: str
) -> None:
    with pytest.raises(SourceInvalid, match=url.split("?")[0]) as err:
        hls_variables.substitute(text, url, imported)
    assert says in str(err.value)


def test_a_query_parameter_is_percent_decoded_and_a_plus_stays_a_plus() -> None:
    text = '#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="t"\n'
    assert hls_variables.substitute(text, "http://h/a.m3u8?x=1&t=a+b%2Fc&t=2")[1] == {"t": "a+b/c"}


def test_a_master_may_not_import() -> None:
    text = MASTER.replace('#EXT-X-DEFINE:QUERYPARAM="token"', '#EXT-X-DEFINE:IMPORT="token"')
    with pytest.raises(SourceInvalid, match="IMPORT='token'.*master playlist itself"):
        parse_playlist(text, MASTER_URL, master())


def test_a_playlist_its_variables_would_blow_up_is_refused() -> None:
    value = "x" * 60_000
    text = f'#EXTM3U\n#EXT-X-DEFINE:NAME="v",VALUE="{value}"\n' + "#EXTINF:1,\n{$v}{$v}{$v}.ts\n" * 200
    with pytest.raises(SourceInvalid, match="expand it past"):
        parse_playlist(text, "http://h/a.m3u8")


def test_a_playlist_without_variables_is_untouched() -> None:
    text = "#EXTM3U\r\n#EXTINF:1,\r\na.ts\r\n"
    assert hls_variables.substitute(text, "http://h/a.m3u8") == (text, {})
