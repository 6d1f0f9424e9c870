"""HLS playlists: parse, pick a variant, select the segments a window needs. Pure, no IO."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from .errors import SourceInvalid

_ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def _attrs(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR_RE.findall(text)}


@dataclass(frozen=True)
class Segment:
    seq: int
    uri: str
    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    height: int | None


@dataclass(frozen=True)
class MediaPlaylist:
    url: str
    segments: tuple[Segment, ...]
    init_uri: str | None = None
    ended: bool = True

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "init_uri": self.init_uri,
            "ended": self.ended,
            "segments": [asdict(s) for s in self.segments],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaPlaylist:
        return cls(
            url=data["url"],
            init_uri=data.get("init_uri"),
            ended=bool(data.get("ended", True)),
            segments=tuple(Segment(**s) for s in data["segments"]),
        )


@dataclass(frozen=True)
class MasterPlaylist:
    url: str
    variants: tuple[Variant, ...] = field(default_factory=tuple)

    def pick(self, height: int) -> Variant:
        """The smallest variant at least ``height`` tall, else the tallest (unknown heights by bandwidth)."""
        ranked = sorted(self.variants, key=lambda v: (v.height or 0, v.bandwidth))
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
    return url


def parse_playlist(text: str, url: str) -> MediaPlaylist | MasterPlaylist:
    """Parse an m3u8 body fetched from ``url``; every URI comes back absolute and http(s)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("#EXTM3U"):
        raise SourceInvalid(f"{url} is not an HLS playlist (no #EXTM3U header)", url=url)
    variants: list[Variant] = []
    segments: list[Segment] = []
    init_uri: str | None = None
    ended = False
    pending_duration: float | None = None
    pending_variant: dict[str, str] | None = None
    media_seq = 0
    t = 0.0
    for ln in lines[1:]:
        if ln.startswith("#EXT-X-STREAM-INF:"):
            pending_variant = _attrs(ln.split(":", 1)[1])
        elif ln.startswith("#EXTINF:"):
            try:
                pending_duration = float(ln.split(":", 1)[1].split(",", 1)[0])
            except ValueError as exc:
                raise SourceInvalid(f"{url}: bad #EXTINF line {ln!r}", url=url) from exc
        elif ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            media_seq = int(ln.split(":", 1)[1] or 0)
        elif ln.startswith("#EXT-X-MAP:"):
            init_uri = _absolute(url, _attrs(ln.split(":", 1)[1]).get("URI", ""))
        elif ln.startswith("#EXT-X-KEY:"):
            if _attrs(ln.split(":", 1)[1]).get("METHOD", "NONE") != "NONE":
                raise SourceInvalid(f"{url}: encrypted HLS is not supported", url=url)
        elif ln.startswith("#EXT-X-BYTERANGE"):
            raise SourceInvalid(f"{url}: byte-range HLS segments are not supported", url=url)
        elif ln.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif ln.startswith("#"):
            continue
        elif pending_variant is not None:
            res = pending_variant.get("RESOLUTION", "")
            height = int(res.split("x")[1]) if "x" in res else None
            variants.append(
                Variant(_absolute(url, ln), int(pending_variant.get("BANDWIDTH", "0") or 0), height)
            )
            pending_variant = None
        elif pending_duration is not None:
            segments.append(
                Segment(media_seq + len(segments), _absolute(url, ln), round(t, 6), pending_duration)
            )
            t += pending_duration
            pending_duration = None
    if variants:
        return MasterPlaylist(url, tuple(variants))
    if not segments:
        raise SourceInvalid(f"{url}: playlist has no segments", url=url)
    return MediaPlaylist(url, tuple(segments), init_uri, ended)


def select_segments(playlist: MediaPlaylist, start_ms: int, end_ms: int) -> list[Segment]:
    """The segments overlapping [start_ms, end_ms), clipped to what the source has.

    Raises SourceInvalid when the window starts beyond the end of the source.
    """
    start_s, end_s = start_ms / 1000, end_ms / 1000
    eps = 1e-6
    chosen = [s for s in playlist.segments if s.start_s < end_s - eps and s.end_s > start_s + eps]
    if not chosen:
        raise SourceInvalid(
            f"window {start_ms}-{end_ms} ms lies outside the source ({playlist.duration_s:.3f} s long)",
            url=playlist.url,
        )
    return chosen
