"""Response bodies in a Content-Encoding, decoded here rather than by httpx, a bounded step at a time.

httpx inflates a whole network read at once (64 KiB of gzipped zeros is 64 MiB) and every coding a
server stacks (``gzip, gzip``: 827 bytes on the wire, 400 MiB inflated), before a size cap could
count a byte. fetch.py reads the raw body instead and passes it through ``decoded``: at most ``STEP``
bytes come out of each step, so the cap, counted on what comes out, bounds memory and bytes produced.

Only what ``ACCEPT_ENCODING`` asks for is decoded: gzip (``x-gzip``) and deflate (zlib, or the raw
deflate some servers send under that name); identity passes through. Any other coding (br, zstd, ...)
or several stacked, and a body that is not valid in its coding, are ``SourceInvalid`` naming the URL.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import httpx

from .errors import SourceInvalid

#: The Accept-Encoding of every request for a whole body (a byte range asks for identity).
ACCEPT_ENCODING = "gzip, deflate"
DECODED = ("gzip", "x-gzip", "deflate")
#: The most one step of decoding produces.
STEP = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
#: wbits for zlib: a gzip or zlib header, told apart by zlib; raw deflate (no header).
_AUTO, _RAW = 32 + zlib.MAX_WBITS, -zlib.MAX_WBITS


def coding(headers: httpx.Headers, named: str, video_id: str = "") -> str:
    """The body's one coding ('identity' when none); SourceInvalid for any other or several stacked."""
    value = headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in value.split(",") if c.strip().lower() not in ("", "identity")]
    if not codings:
        return "identity"
    if len(codings) > 1 or codings[0] not in DECODED:
        what = "several codings stacked" if len(codings) > 1 else "a coding that was not asked for"
        raise SourceInvalid(
            f"{named}: the body came in Content-Encoding {value.strip()!r}, {what} "
            f"(clipline asks for {ACCEPT_ENCODING} or none); refused",
            video_id=video_id,
            url=named,
        )
    return codings[0]


def _is_zlib(head: bytes) -> bool:
    """Whether ``head`` starts like a zlib (or gzip) stream rather than raw deflate."""
    return head[:2] == GZIP_MAGIC or (head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0)


def decoded(raw: Iterable[bytes], how: str, named: str, video_id: str = "") -> Iterator[bytes]:
    """The body ``raw`` (its bytes as sent) decoded from coding ``how``, in pieces of at most ``STEP``.

    A gzip body may be several members one after another (RFC 1952 2.2: what ``cat a.gz b.gz`` makes):
    each is decoded in turn. Bytes after the end of a zlib or deflate stream, or after a gzip member
    that do not start another member, are SourceInvalid: the body would otherwise be taken cut short."""
    if how == "identity":
        yield from raw
        return

    def broken(why: str) -> SourceInvalid:
        return SourceInvalid(f"{named}: the {how} body {why}", video_id=video_id, url=named)

    inflater: zlib._Decompress | None = None
    gzip_members: bool | None = None  # None until the first stream starts: whether it is gzip
    head = b""  # bytes before a stream starts, until there are two: enough to tell what it is
    for data in raw:
        while True:
            if inflater is None:
                data, head = head + data, b""
                if gzip_members:  # after a member: zeros that pad the body are skipped, as gzip(1) does
                    data = data.lstrip(b"\0")
                if len(data) < 2:
                    head = data
                    break
                if gzip_members is None:
                    gzip_members = data[:2] == GZIP_MAGIC
                    raw_deflate = how == "deflate" and not _is_zlib(data)
                    inflater = zlib.decompressobj(wbits=_RAW if raw_deflate else _AUTO)
                elif gzip_members and data[:2] == GZIP_MAGIC:
                    inflater = zlib.decompressobj(wbits=_AUTO)
                else:
                    raise broken("has bytes after the end of its stream")
            try:
                out = inflater.decompress(data, STEP)
            except zlib.error as exc:
                raise broken(f"is not valid {how} ({exc})") from exc
            data = inflater.unconsumed_tail
            if out:
                yield out
            if inflater.eof:  # what follows is the next gzip member, or nothing
                data, inflater = inflater.unused_data + data, None
                continue
            if not data and len(out) < STEP:  # all input taken and nothing held back
                break
    if head and gzip_members is not None:
        raise broken("has bytes after the end of its stream")
    if head or inflater is not None:
        raise broken("is cut short (its stream does not end)")
