"""HLS playlists: parse, pick a rendition, select the segments a window needs. Pure, no IO.

The text is read by the ``m3u8`` library (every tag of RFC 8216 and its
drafts); this module turns its objects into clipline's own frozen records and
refuses, before any work, what cannot be cut exactly: live or EVENT playlists
without ``#EXT-X-ENDLIST``, I-frame playlists (``#EXT-X-I-FRAMES-ONLY``),
delta updates (``#EXT-X-SKIP``), absurd ``#EXTINF`` values, SAMPLE-AES and DRM
keys, non-http URIs. Every parser failure is a ``SourceInvalid`` naming the
playlist, never a bare ValueError.

Supported: MPEG-TS and fMP4 (``#EXT-X-MAP``, with ``BYTERANGE`` and changing
mid-playlist) segments, ``#EXT-X-BYTERANGE``, ``#EXT-X-DISCONTINUITY``,
``#EXT-X-GAP`` (marked; the cutter sends such windows to fallback),
``#EXT-X-KEY`` METHOD=AES-128, variables (``#EXT-X-DEFINE``, see ``hls_variables``),
master playlists (``CODECS``, ``RESOLUTION``; ``#EXT-X-MEDIA`` alternates are
audio/subtitles and are ignored for video, as are ``#EXT-X-I-FRAME-STREAM-INF``
trick-play renditions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import m3u8

from . import hls_variables
from .errors import SourceInvalid
from .problems import url_syntax_problem

#: ``#EXT-X-MEDIA-SEQUENCE`` and ``#EXT-X-DISCONTINUITY-SEQUENCE`` are decimal-integers: 0 .. 2^64-1.
MAX_SEQUENCE = 2**64 - 1
#: A media playlist listing more segments than this is refused: 24 hours of 2-second segments fit; a
#: hostile one of hundreds of thousands (4 MiB of ``#EXTINF:0.01``) would cost seconds to parse and tens
#: of MB in Redis per job and video.
MAX_PLAYLIST_SEGMENTS = 50_000
#: A window that needs more segments than this is refused (a playlist of absurdly short segments).
MAX_SEGMENTS_PER_WINDOW = 120
#: The longest ``#EXTINF`` taken seriously (a day).
MAX_EXTINF_S = 86400.0


@dataclass(frozen=True)
class Part:
    """A resource: a URI, or a byte range of it (``offset``, ``length``)."""

    uri: str
    offset: int | None = None
    length: int | None = None

    @property
    def byte_range(self) -> tuple[int, int] | None:
        """(first, last) byte, inclusive, as in an HTTP Range header; None for the whole resource."""
        if self.offset is None or self.length is None:
            return None
        return self.offset, self.offset + self.length - 1


@dataclass(frozen=True)
class Key:
    """``#EXT-X-KEY`` METHOD=AES-128: the key's URI and the IV (None: the media sequence number)."""

    uri: str
    iv: bytes | None = None

    def iv_for(self, seq: int) -> bytes:
        return self.iv if self.iv is not None else seq.to_bytes(16, "big")


@dataclass(frozen=True)
class Segment:
    seq: int
    uri: str
    start_s: float  # on the playlist timeline (sum of #EXTINF before it): places a window, never cuts it
    duration_s: float
    offset: int | None = None  # #EXT-X-BYTERANGE
    length: int | None = None
    discontinuity: int = 0  # the discontinuity sequence: timestamps are continuous only within one
    init: Part | None = None  # #EXT-X-MAP: fMP4
    key: Key | None = None
    gap: bool = False

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def part(self) -> Part:
        return Part(self.uri, self.offset, self.length)

    @property
    def container(self) -> str:
        """ffmpeg's demuxer name for this segment: ``mp4`` with an init section, else ``mpegts``."""
        return "mp4" if self.init is not None else "mpegts"


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    height: int | None
    codecs: tuple[str, ...] = ()

    @property
    def audio_only(self) -> bool:
        """Its ``CODECS`` are known and none is video (an audio-only rendition, as Apple's HLS
        authoring guidelines ask masters to carry)."""
        kinds = [c.split(".", 1)[0].lower() for c in self.codecs]
        return bool(kinds) and all(k.startswith(NOT_VIDEO) for k in kinds)


@dataclass(frozen=True)
class MediaPlaylist:
    url: str
    segments: tuple[Segment, ...]
    ended: bool = True

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0

    def first_of_discontinuity(self, discontinuity: int) -> Segment:
        """The first segment after the ``discontinuity``-th boundary: its timestamps anchor the rest."""
        return next(s for s in self.segments if s.discontinuity == discontinuity)

    def following(self, segment: Segment) -> Segment | None:
        i = segment.seq - self.segments[0].seq + 1
        return self.segments[i] if i < len(self.segments) else None

    def preceding(self, segment: Segment) -> Segment | None:
        i = segment.seq - self.segments[0].seq - 1
        return self.segments[i] if i >= 0 else None

    def to_json(self) -> dict[str, Any]:
        def seg(s: Segment) -> dict[str, Any]:
            d = asdict(s)
            d["key"] = (
                None if s.key is None else {"uri": s.key.uri, "iv": s.key.iv.hex() if s.key.iv else None}
            )
            return d

        return {"url": self.url, "ended": self.ended, "segments": [seg(s) for s in self.segments]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaPlaylist:
        def seg(d: dict[str, Any]) -> Segment:
            d = dict(d)
            d["init"] = Part(**d["init"]) if d.get("init") else None
            k = d.get("key")
            d["key"] = Key(k["uri"], bytes.fromhex(k["iv"]) if k.get("iv") else None) if k else None
            return Segment(**d)

        return cls(data["url"], tuple(seg(s) for s in data["segments"]), bool(data.get("ended", True)))


#: Codec prefixes of RFC 6381 ``CODECS`` entries that carry video, and the software decoders (any one).
VIDEO_DECODERS = {
    "avc1": ("h264",),
    "avc3": ("h264",),
    "hvc1": ("hevc",),
    "hev1": ("hevc",),
    "dvh1": ("hevc",),
    "dvhe": ("hevc",),
    "av01": ("libdav1d", "libaom-av1", "av1"),
    "vp09": ("vp9", "libvpx-vp9"),
    "vp08": ("vp8", "libvpx"),
    "mp4v": ("mpeg4",),
}
#: Entries that are audio or text: they do not decide whether the video can be decoded.
NOT_VIDEO = ("mp4a", "ac-3", "ec-3", "ac-4", "opus", "flac", "fla", "mp3", "alac", "stpp", "wvtt", "dts")


def undecodable_codecs(codecs: tuple[str, ...], decoders: frozenset[str]) -> list[str]:
    """The video codecs of a ``CODECS`` list that ffmpeg (with ``decoders``) cannot decode."""
    bad = []
    for codec in codecs:
        prefix = codec.split(".", 1)[0].lower()
        if prefix.startswith(NOT_VIDEO):
            continue
        needs = VIDEO_DECODERS.get(prefix, ())
        if not any(d in decoders for d in needs):
            bad.append(codec)
    return bad


@dataclass(frozen=True)
class MasterPlaylist:
    url: str
    variants: tuple[Variant, ...] = field(default_factory=tuple)
    #: The variables it defines (``#EXT-X-DEFINE``), for its media playlists to ``IMPORT``.
    variables: tuple[tuple[str, str], ...] = ()

    def pick(self, height: int, decodable: Callable[[Variant], bool] = lambda v: True) -> Variant:
        """The smallest decodable variant at least ``height`` tall, else the tallest (unknown heights by
        bandwidth), never an audio-only one. Raises SourceInvalid when no variant can be decoded."""
        video = [v for v in self.variants if not v.audio_only]
        if not video:
            raise SourceInvalid(
                f"{self.url}: every rendition is audio only (CODECS); no video to cut", url=self.url
            )
        usable = [v for v in video if decodable(v)]
        if not usable:
            codecs = sorted({",".join(v.codecs) for v in self.variants})
            raise SourceInvalid(
                f"{self.url}: no rendition has codecs this ffmpeg can decode ({'; '.join(codecs)})",
                url=self.url,
            )
        ranked = sorted(usable, key=lambda v: (v.height or 0, v.bandwidth))
        for variant in ranked:
            if variant.height is not None and variant.height >= height:
                return variant
        return ranked[-1]


def _absolute(base: str, uri: str) -> str:
    url = urljoin(base, uri.strip())
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise SourceInvalid(
            f"playlist {base} names a {scheme or 'schemeless'} URI ({uri!r}); only http(s) is read", url=base
        )
    if problem := url_syntax_problem(url):
        raise SourceInvalid(f"playlist {base} names an unusable URI ({uri!r}): {problem}", url=base)
    return url


def _byterange(text: str, url: str, what: str) -> tuple[int, int | None]:
    """``n[@o]`` -> (length, offset or None)."""
    length, _, offset = text.strip().strip('"').partition("@")
    try:
        n, o = int(length), (int(offset) if offset else None)
    except ValueError as exc:
        raise SourceInvalid(f"{url}: bad BYTERANGE {text!r} on {what}", url=url) from exc
    if n <= 0 or (o is not None and o < 0):
        raise SourceInvalid(f"{url}: bad BYTERANGE {text!r} on {what}", url=url)
    return n, o


def _key(obj: Any, url: str) -> Key | None:
    if obj is None or (obj.method or "NONE").upper() == "NONE":
        return None
    method = obj.method.upper()
    keyformat = (obj.keyformat or "identity").strip('"')
    if method != "AES-128" or keyformat != "identity":
        raise SourceInvalid(
            f"{url}: #EXT-X-KEY METHOD={method} KEYFORMAT={keyformat} (SAMPLE-AES or DRM) is not supported; "
            f"only METHOD=AES-128 with an identity key is decrypted",
            url=url,
        )
    if not obj.uri:
        raise SourceInvalid(f"{url}: #EXT-X-KEY METHOD=AES-128 without a URI", url=url)
    iv = None
    if obj.iv:
        try:
            iv = bytes.fromhex(obj.iv[2:] if obj.iv.lower().startswith("0x") else obj.iv).rjust(16, b"\0")
        except ValueError as exc:
            raise SourceInvalid(f"{url}: bad #EXT-X-KEY IV {obj.iv!r}", url=url) from exc
        if len(iv) != 16:
            raise SourceInvalid(f"{url}: #EXT-X-KEY IV {obj.iv!r} is not 128 bits", url=url)
    return Key(_absolute(url, obj.uri), iv)


def _init(obj: Any, url: str) -> Part | None:
    if obj is None:
        return None
    uri = _absolute(url, obj.uri or "")
    if not obj.byterange:
        return Part(uri)
    length, offset = _byterange(obj.byterange, url, "#EXT-X-MAP")
    return Part(uri, offset or 0, length)


def _media(parsed: Any, url: str) -> MediaPlaylist:
    if parsed.is_i_frames_only:
        raise SourceInvalid(
            f"{url}: an I-frame playlist (#EXT-X-I-FRAMES-ONLY) lists keyframes only, for trick play; "
            f"the video's master or media playlist is cut, not this one",
            url=url,
        )
    if (parsed.data.get("skip") or {}).get("skipped_segments"):
        raise SourceInvalid(
            f"{url}: a playlist delta update (#EXT-X-SKIP, asked for by _HLS_skip): the skipped segments'"
            f" durations are not listed, so no time in it can be placed; the whole playlist is needed",
            url=url,
        )
    if len(parsed.segments) > MAX_PLAYLIST_SEGMENTS:
        raise SourceInvalid(
            f"{url}: {len(parsed.segments)} segments, more than the {MAX_PLAYLIST_SEGMENTS} a playlist"
            " may list",
            url=url,
        )
    for tag, value in (
        ("#EXT-X-MEDIA-SEQUENCE", parsed.media_sequence),
        ("#EXT-X-DISCONTINUITY-SEQUENCE", parsed.discontinuity_sequence),
    ):
        if not 0 <= int(value or 0) <= MAX_SEQUENCE - len(parsed.segments):
            raise SourceInvalid(f"{url}: {tag} {value} is not a number from 0 to 2^64-1 (RFC 8216)", url=url)
    segments: list[Segment] = []
    t = 0.0
    disc = int(parsed.discontinuity_sequence or 0)
    next_offset: dict[str, int] = {}
    for i, s in enumerate(parsed.segments):
        seq = int(parsed.media_sequence or 0) + i
        if not s.uri and s.duration is None and s.parts and i == len(parsed.segments) - 1:
            continue  # low-latency HLS: the segment being written, listed by its parts so far
        d = s.duration
        if d is None or not math.isfinite(d) or d <= 0 or d > MAX_EXTINF_S:
            raise SourceInvalid(f"{url}: segment {seq} has an absurd #EXTINF ({d!r} s)", url=url)
        if s.discontinuity and i:
            disc += 1
        uri = _absolute(url, s.uri or "")
        offset = length = None
        if s.byterange:
            length, offset = _byterange(s.byterange, url, f"segment {seq}")
            if offset is None:
                if uri not in next_offset:
                    raise SourceInvalid(
                        f"{url}: segment {seq} has a BYTERANGE without an offset "
                        f"and no previous range of {uri}",
                        url=url,
                    )
                offset = next_offset[uri]
            next_offset[uri] = offset + length
        segments.append(
            Segment(
                seq=seq,
                uri=uri,
                start_s=round(t, 6),
                duration_s=d,
                offset=offset,
                length=length,
                discontinuity=disc,
                init=_init(s.init_section, url),
                key=_key(s.key, url),
                gap=bool(getattr(s, "gap_tag", None)),
            )
        )
        t += d
    if not segments:
        raise SourceInvalid(f"{url}: playlist has no segments", url=url)
    if not parsed.is_endlist:
        kind = (parsed.playlist_type or "live").upper()
        raise SourceInvalid(
            f"{url}: a {kind} playlist without #EXT-X-ENDLIST: the source is not complete, so a window "
            f"on it cannot be placed; only VOD playlists are cut",
            url=url,
        )
    return MediaPlaylist(url, tuple(segments), True)


def parse_playlist(
    text: str, url: str, master: MasterPlaylist | None = None
) -> MediaPlaylist | MasterPlaylist:
    """Parse an m3u8 body fetched from ``url`` (through ``master``, when it named it); variables are
    substituted and every URI comes back absolute and http(s)."""
    if not text.lstrip("\ufeff").lstrip().startswith("#EXTM3U"):
        raise SourceInvalid(f"{url} is not an HLS playlist (no #EXTM3U header)", url=url)
    is_master = "#EXT-X-STREAM-INF" in text
    text, variables = hls_variables.substitute(
        text, url, dict(master.variables) if master else None, master=is_master
    )
    try:
        parsed = m3u8.loads(text, uri=url)
    except Exception as exc:  # noqa: BLE001 - the library raises ValueError, IndexError, AttributeError...
        raise SourceInvalid(f"{url}: malformed playlist ({type(exc).__name__}: {exc})", url=url) from exc
    try:
        if parsed.is_variant:
            variants = []
            for p in parsed.playlists:
                info = p.stream_info
                res = info.resolution
                codecs = tuple(c.strip() for c in (info.codecs or "").split(",") if c.strip())
                variants.append(
                    Variant(
                        _absolute(url, p.uri or ""), int(info.bandwidth or 0), res[1] if res else None, codecs
                    )
                )
            if not variants:
                raise SourceInvalid(f"{url}: master playlist without #EXT-X-STREAM-INF renditions", url=url)
            return MasterPlaylist(url, tuple(variants), tuple(variables.items()))
        return _media(parsed, url)
    except SourceInvalid:
        raise
    except Exception as exc:  # noqa: BLE001 - any surprise in the parsed objects is a malformed playlist
        raise SourceInvalid(f"{url}: malformed playlist ({type(exc).__name__}: {exc})", url=url) from exc


def select_segments(playlist: MediaPlaylist, start_ms: int, end_ms: int) -> list[Segment]:
    """The segments overlapping [start_ms, end_ms) on the playlist timeline, clipped to what the source has.

    Raises SourceInvalid when the window starts beyond the end of the source or needs more than
    ``MAX_SEGMENTS_PER_WINDOW`` segments.
    """
    start_s, end_s = start_ms / 1000, end_ms / 1000
    eps = 1e-6
    chosen = [s for s in playlist.segments if s.start_s < end_s - eps and s.end_s > start_s + eps]
    if not chosen:
        raise SourceInvalid(
            f"window {start_ms}-{end_ms} ms lies outside the source ({playlist.duration_s:.3f} s long)",
            url=playlist.url,
        )
    if len(chosen) > MAX_SEGMENTS_PER_WINDOW:
        raise SourceInvalid(
            f"window {start_ms}-{end_ms} ms spans {len(chosen)} segments of {playlist.url} "
            f"(more than {MAX_SEGMENTS_PER_WINDOW}): segments this short are not cut",
            url=playlist.url,
        )
    return chosen
