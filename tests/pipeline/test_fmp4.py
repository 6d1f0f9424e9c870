"""fMP4 box rewriting: shapes it does not rewrite are left alone (None), never half-rewritten."""

from __future__ import annotations

import struct

import pytest

from pipeline import fmp4


def box(typ: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def test_boxes_reads_sizes_and_refuses_one_beyond_its_parent() -> None:
    data = box(b"ftyp", b"isom") + box(b"moov", box(b"mvhd", b"\0" * 4))
    assert [(b.type, b.start, b.end) for b in fmp4.boxes(data)] == [(b"ftyp", 0, 12), (b"moov", 12, 32)]
    with pytest.raises(fmp4.Unsupported):
        fmp4.boxes(data[:-1])


def test_no_video_track_or_nothing_to_drop_gives_none() -> None:
    init = box(b"ftyp", b"isom") + box(b"moov", box(b"mvhd", b"\0" * 4))
    assert fmp4.from_sample(init, box(b"moof") + box(b"mdat"), 3) is None  # no video track
    assert fmp4.from_sample(b"junk", b"junk", 3) is None
    assert fmp4.from_sample(init, b"", 0) is None
