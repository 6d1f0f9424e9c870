"""Fragmented MP4 at the box level: start a run of fMP4 segments at a keyframe inside a fragment. Pure.

An fMP4 HLS segment is usually one fragment (``moof`` + ``mdat``) holding
several GOPs, so a window in its second half would decode the whole first
half. ``from_sample`` drops the video track's first ``n`` samples (whole
fragments, then the head of the fragment that holds sample ``n``): in that
fragment the video ``trun`` loses its first entries, its ``tfdt`` grows by
their durations (the kept samples keep their timestamps exactly), and every
``trun``'s data offset follows the smaller ``moof`` and the skipped bytes.
``sidx``/``styp`` boxes are left out (they index the fragments as they were).

Only the common shape is rewritten: data offsets relative to the ``moof``
(``default-base-is-moof``, or a single track fragment), sizes and durations
given per sample or as the fragment's defaults. Anything else returns
``None`` and the caller decodes from the start of the run, as before.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# tfhd flags
_BASE_DATA_OFFSET = 0x000001
_SAMPLE_DESCRIPTION = 0x000002
_DEFAULT_DURATION = 0x000008
_DEFAULT_SIZE = 0x000010
_DEFAULT_FLAGS = 0x000020
_DEFAULT_BASE_IS_MOOF = 0x020000
# trun flags
_DATA_OFFSET = 0x000001
_FIRST_SAMPLE_FLAGS = 0x000004
_SAMPLE_DURATION = 0x000100
_SAMPLE_SIZE = 0x000200
_SAMPLE_FLAGS = 0x000400
_SAMPLE_CTS = 0x000800
_FIELDS = (_SAMPLE_DURATION, _SAMPLE_SIZE, _SAMPLE_FLAGS, _SAMPLE_CTS)  # a trun entry's fields, in order


#: More samples than any trun of an HLS segment holds (over 4 hours at 60 fps): a count read from outside
#: is not trusted to size a list (a trun without per-sample fields claims any count in 8 bytes).
MAX_SAMPLES = 1 << 20


class Unsupported(ValueError):
    """The fragments have a shape ``from_sample`` does not rewrite (the caller keeps the whole run)."""


@dataclass(frozen=True)
class Box:
    type: bytes
    start: int  # offset of the box header in the buffer
    header: int  # header length (8, or 16 with a 64-bit size)
    end: int

    def body(self, data: bytes) -> bytes:
        return data[self.start + self.header : self.end]


def boxes(data: bytes, start: int = 0, end: int | None = None, *, cut_off_ok: bool = False) -> list[Box]:
    """The boxes laid end to end in ``data[start:end]``; raises Unsupported on a size that does not fit,
    or with ``cut_off_ok`` returns the boxes before it (a segment's first bytes: its moof, part of its
    mdat)."""
    end = len(data) if end is None else end
    out: list[Box] = []
    i = start
    while i < end:
        try:
            if end - i < 8:
                raise Unsupported(f"{end - i} stray bytes at offset {i}")
            size, typ = struct.unpack_from(">I4s", data, i)
            header = 8
            if size == 1:
                if end - i < 16:
                    raise Unsupported(f"box {typ!r} at {i} is cut off in its 64-bit size")
                size, header = struct.unpack_from(">Q", data, i + 8)[0], 16
            elif size == 0:
                size = end - i
            if size < header or i + size > end:
                raise Unsupported(f"box {typ!r} at {i} has size {size} beyond its parent")
        except Unsupported:
            if cut_off_ok:
                return out
            raise
        out.append(Box(typ, i, header, i + size))
        i += size
    return out


def child(data: bytes, parent: Box, typ: bytes) -> Box | None:
    return next((b for b in boxes(data, parent.start + parent.header, parent.end) if b.type == typ), None)


def video_track_id(init: bytes) -> int:
    """The ``track_ID`` of the first video track (``hdlr`` ``vide``) of an init section."""
    for moov in (b for b in boxes(init) if b.type == b"moov"):
        for trak in (b for b in boxes(init, moov.start + moov.header, moov.end) if b.type == b"trak"):
            mdia, tkhd = child(init, trak, b"mdia"), child(init, trak, b"tkhd")
            hdlr = child(init, mdia, b"hdlr") if mdia else None
            if hdlr is None or tkhd is None or hdlr.body(init)[8:12] != b"vide":
                continue
            body = tkhd.body(init)
            at = 20 if body[:1] == b"\x01" else 12
            if len(body) < at + 4:
                raise Unsupported(f"the video track's tkhd is {len(body)} bytes long")
            return int(struct.unpack_from(">I", body, at)[0])
    raise Unsupported("the init section has no video track")


#: One trun entry: duration, size, flags, composition offset (None: not given per sample).
_Entry = tuple[int | None, int | None, int | None, int | None]


@dataclass
class Trun:
    flags: int
    data_offset: int
    first_flags: int | None
    entries: list[_Entry]

    @classmethod
    def parse(cls, body: bytes) -> Trun:
        if len(body) < 8:
            raise Unsupported(f"trun of {len(body)} bytes")
        version_flags, count = struct.unpack_from(">II", body, 0)
        if count > MAX_SAMPLES:
            raise Unsupported(f"trun of {count} samples")
        flags = version_flags & 0xFFFFFF
        i = 8
        data_offset = first_flags = None
        if len(body) < 8 + 4 * bool(flags & _DATA_OFFSET) + 4 * bool(flags & _FIRST_SAMPLE_FLAGS):
            raise Unsupported(f"trun of {len(body)} bytes, short of its flags' fields")
        if flags & _DATA_OFFSET:
            data_offset = struct.unpack_from(">i", body, i)[0]
            i += 4
        if flags & _FIRST_SAMPLE_FLAGS:
            first_flags = struct.unpack_from(">I", body, i)[0]
            i += 4
        fields = [f for f in _FIELDS if flags & f]
        if len(body) < i + 4 * len(fields) * count:
            raise Unsupported("trun shorter than its sample count")
        entries: list[_Entry] = []
        for _ in range(count):
            row: dict[int, int] = {}
            for field in fields:
                row[field] = struct.unpack_from(">I", body, i)[0]
                i += 4
            entries.append(
                (
                    row.get(_SAMPLE_DURATION),
                    row.get(_SAMPLE_SIZE),
                    row.get(_SAMPLE_FLAGS),
                    row.get(_SAMPLE_CTS),
                )
            )
        if data_offset is None:
            raise Unsupported("trun without a data offset")
        return cls(version_flags, data_offset, first_flags, entries)

    @property
    def version(self) -> int:
        return self.flags >> 24

    def offset_field(self, k: int) -> int | None:
        """Where entry ``k``'s composition offset sits in the trun's body; None: not given per sample."""
        flags = self.flags & 0xFFFFFF
        if not flags & _SAMPLE_CTS:
            return None
        at = 8 + 4 * bool(flags & _DATA_OFFSET) + 4 * bool(flags & _FIRST_SAMPLE_FLAGS)
        fields = [f for f in _FIELDS if flags & f]
        return at + 4 * (k * len(fields) + fields.index(_SAMPLE_CTS))

    def build(self) -> bytes:
        body = struct.pack(">II", self.flags, len(self.entries)) + struct.pack(">i", self.data_offset)
        if self.first_flags is not None:
            body += struct.pack(">I", self.first_flags)
        for duration, size, flags, cts in self.entries:
            for value in (duration, size, flags, cts):
                if value is not None:
                    body += struct.pack(">I", value)
        return _box(b"trun", body)


def tfhd_fields(body: bytes) -> tuple[int, int, int | None, int | None]:
    """(flags, track_ID, default duration, default size)."""
    if len(body) < 8:
        raise Unsupported(f"tfhd of {len(body)} bytes")
    flags = struct.unpack_from(">I", body, 0)[0] & 0xFFFFFF
    track = struct.unpack_from(">I", body, 4)[0]
    i = 8 + (8 if flags & _BASE_DATA_OFFSET else 0) + (4 if flags & _SAMPLE_DESCRIPTION else 0)
    duration = size = None
    if len(body) < i + 4 * bool(flags & _DEFAULT_DURATION) + 4 * bool(flags & _DEFAULT_SIZE):
        raise Unsupported(f"tfhd of {len(body)} bytes, short of its flags' fields")
    if flags & _DEFAULT_DURATION:
        duration = struct.unpack_from(">I", body, i)[0]
        i += 4
    if flags & _DEFAULT_SIZE:
        size = struct.unpack_from(">I", body, i)[0]
    return flags, track, duration, size


def _box(typ: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def video_sample_counts(data: bytes, track_id: int) -> list[int]:
    """Video samples per fragment, in file order (``data``: the fragments, without the init section)."""
    counts = []
    for moof in (b for b in boxes(data) if b.type == b"moof"):
        n = 0
        for traf in (b for b in boxes(data, moof.start + moof.header, moof.end) if b.type == b"traf"):
            if traf_track(data, traf) != track_id:
                continue
            for trun in (b for b in boxes(data, traf.start + traf.header, traf.end) if b.type == b"trun"):
                if trun.end - trun.start - trun.header < 8:
                    raise Unsupported(f"trun of {trun.end - trun.start - trun.header} bytes")
                n += struct.unpack_from(">I", data, trun.start + trun.header + 4)[0]
        counts.append(n)
    return counts


def traf_track(data: bytes, traf: Box) -> int | None:
    """The track a track fragment belongs to (its tfhd's track_ID); None without a tfhd."""
    tfhd = child(data, traf, b"tfhd")
    return tfhd_fields(tfhd.body(data))[1] if tfhd is not None else None


def _rewrite_moof(data: bytes, moof: Box, track_id: int, drop: int) -> bytes:
    """The moof with the video track's first ``drop`` samples left out (see the module docstring)."""
    trafs = [b for b in boxes(data, moof.start + moof.header, moof.end) if b.type == b"traf"]
    others = [b for b in boxes(data, moof.start + moof.header, moof.end) if b.type != b"traf"]
    if sum(1 for traf in trafs if traf_track(data, traf) == track_id) != 1:
        # ISO/IEC 14496-12 allows several track fragments of one track in a moof: the samples to drop
        # would span them (each one dropping ``drop`` froze frames); such fragments are not rewritten
        raise Unsupported("the video track has several track fragments in one moof")
    new_trafs: list[tuple[bytes, list[int]]] = []  # (traf bytes, where its truns' data offsets sit)
    for traf in trafs:
        parts = boxes(data, traf.start + traf.header, traf.end)
        tfhd = next((p for p in parts if p.type == b"tfhd"), None)
        if tfhd is None:
            raise Unsupported("traf without tfhd")
        flags, track, default_duration, default_size = tfhd_fields(tfhd.body(data))
        if flags & _BASE_DATA_OFFSET or not (flags & _DEFAULT_BASE_IS_MOOF or len(trafs) == 1):
            raise Unsupported("data offsets not relative to the moof")
        truns = [p for p in parts if p.type == b"trun"]
        mine = track == track_id and drop > 0
        if mine and len(truns) != 1:
            raise Unsupported(f"{len(truns)} truns in the video track fragment")
        skipped_bytes = skipped_ticks = 0
        out = b""
        offsets: list[int] = []
        for p in parts:
            if p.type == b"trun":
                trun = Trun.parse(p.body(data))
                if mine:
                    gone, trun.entries = trun.entries[:drop], trun.entries[drop:]
                    for duration, size, _, _ in gone:
                        duration = duration if duration is not None else default_duration
                        size = size if size is not None else default_size
                        if duration is None or size is None:
                            raise Unsupported("sample durations or sizes come from the init section")
                        skipped_ticks += duration
                        skipped_bytes += size
                    trun.data_offset += skipped_bytes
                offsets.append(len(out) + 16)  # after the header, version/flags and sample count
                out += trun.build()
                continue
            out += data[p.start : p.end]
        if mine:
            if not any(p.type == b"tfdt" for p in parts):
                raise Unsupported("video traf without tfdt")
            out = _shift_tfdt(out, skipped_ticks)
        new_trafs.append((out, offsets))
    head = b"".join(data[b.start : b.end] for b in others)
    body_len = len(head) + sum(8 + len(t) for t, _ in new_trafs)
    grow = (8 + body_len) - (moof.end - moof.start)  # negative: the moof shrank, its mdat came closer
    moof_out = bytearray(struct.pack(">I4s", 8 + body_len, b"moof") + head)
    for traf_bytes, offsets in new_trafs:
        start = len(moof_out) + 8
        moof_out += _box(b"traf", traf_bytes)
        for at in offsets:
            i = start + at
            old = struct.unpack_from(">i", moof_out, i)[0]
            struct.pack_into(">i", moof_out, i, old + grow)
    return bytes(moof_out)


def _shift_tfdt(out: bytes, ticks: int) -> bytes:
    """``out`` (a traf's rebuilt children) with its tfdt's base media decode time grown by ``ticks``."""
    tfdt = next(b for b in boxes(out) if b.type == b"tfdt")
    at, body = tfdt.start, bytearray(out)
    if tfdt.end - at < 16 or (body[at + 8] == 1 and tfdt.end - at < 20):
        raise Unsupported(f"tfdt of {tfdt.end - at} bytes")
    version = body[at + 8]
    if version == 1:
        value = struct.unpack_from(">Q", body, at + 12)[0] + ticks
        struct.pack_into(">Q", body, at + 12, value)
    else:
        value = struct.unpack_from(">I", body, at + 12)[0] + ticks
        if value >= 1 << 32:
            raise Unsupported("tfdt overflows its 32 bits")
        struct.pack_into(">I", body, at + 12, value)
    return bytes(body)


def from_sample(init: bytes, fragments: bytes, n: int) -> bytes | None:
    """``init`` + ``fragments`` starting at the video track's ``n``-th sample (decode order, from 0),
    which must be a keyframe; None when the fragments have a shape this module does not rewrite."""
    if n <= 0:
        return None
    try:
        track = video_track_id(init)
        counts = video_sample_counts(fragments, track)
        if n >= sum(counts):
            return None
        top = boxes(fragments)
        moofs = [b for b in top if b.type == b"moof"]
        k, before = 0, 0
        while before + counts[k] <= n:
            before += counts[k]
            k += 1
        moof = moofs[k]
        rest = [b for b in top if b.start > moof.start and b.type not in (b"sidx", b"styp")]
        return (
            init
            + _rewrite_moof(fragments, moof, track, n - before)
            + b"".join(fragments[b.start : b.end] for b in rest)
        )
    except (Unsupported, struct.error, IndexError):
        return None
