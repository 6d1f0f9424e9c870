"""The keyframe time ffmpeg 5.1's fMP4 writer misplaces: put back only where the fragment leaves no doubt.

The offsets below are those of real files (``ffprobe -show_packets`` of ffmpeg 5.1's HLS fMP4 output,
time base 15360, 512 ticks a frame at 30 fps); the corpus variants ``hevc_open_gop`` and
``x264_intra_refresh_fmp4`` trace the frames through a cut (``tests/integration/test_hls_variants.py``).
"""

from __future__ import annotations

import random
import struct

import pytest

from pipeline import fmp4, fmp4_times

SYNC, NON_SYNC = 0x02000000, 0x01010000
STEP = 512
#: HEVC, x265's open GOP (keyint 15, 3 B-frames), a segment's first fragment: the CRA written at its
#: leading pictures' first time (offset 1024 where its own is 2048)
HEVC = [1024, 1024, 0, 2560, 1024, 0, 512, 2560, 1024, 0, 512, 2560, 1024, 0, 512]
#: x264's intra refresh: the recovery-point P-frame written at the time of the B-frame after it
INTRA_REFRESH = [1024, 1024, 0, 512, 2560, 1024, 0, 512, 2560, 1024, 0, 512]


def box(typ: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def full(typ: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(typ, struct.pack(">I", version << 24 | flags) + payload)


INIT = box(b"ftyp", b"iso6") + box(
    b"moov",
    box(
        b"trak",
        full(b"tkhd", 0, 3, struct.pack(">III", 0, 0, 1) + b"\0" * 68)
        + box(b"mdia", full(b"hdlr", 0, 0, b"\0" * 4 + b"vide" + b"\0" * 12)),
    ),
)


def fragment(
    offsets: list[int],
    *,
    durations: list[int] | None = None,
    version: int = 0,
    first: int = SYNC,
    default_duration: int = STEP,
) -> bytes:
    """A moof + mdat of the video track (ID 1): per-sample sizes, flags and offsets, durations per sample
    or the tfhd's default."""
    per_sample = durations is not None
    trun_flags = 0x001 | 0x200 | 0x400 | 0x800 | (0x100 if per_sample else 0)
    rows = b""
    for i, off in enumerate(offsets):
        rows += struct.pack(">I", (durations or [])[i]) if per_sample else b""
        rows += struct.pack(">III", 10, first if i == 0 else NON_SYNC, off & 0xFFFFFFFF)
    trun = full(b"trun", version, trun_flags, struct.pack(">Ii", len(offsets), 0) + rows)
    tfhd = full(b"tfhd", 0, 0x020008, struct.pack(">II", 1, default_duration))
    tfdt = full(b"tfdt", 1, 0, struct.pack(">Q", 14336))
    moof = box(b"moof", full(b"mfhd", 0, 0, struct.pack(">I", 1)) + box(b"traf", tfhd + tfdt + trun))
    return moof + box(b"mdat", b"\0" * 10 * len(offsets))


def first_offsets(data: bytes) -> list[int]:
    """Each fragment's first composition offset."""
    out = []
    for moof in (b for b in fmp4.boxes(data) if b.type == b"moof"):
        traf = fmp4.child(data, moof, b"traf")
        assert traf is not None
        trun = fmp4.child(data, traf, b"trun")
        assert trun is not None
        out.append(fmp4.Trun.parse(trun.body(data)).entries[0][3])
    return out


@pytest.mark.parametrize(("offsets", "placed"), [(HEVC, 2048), (INTRA_REFRESH, 2560)])
def test_the_keyframe_goes_to_the_one_time_its_fragment_leaves_free(offsets: list[int], placed: int) -> None:
    data = INIT + fragment(offsets)
    fixed, n = fmp4_times.repair(data)
    assert (n, first_offsets(fixed)) == (1, [placed])
    assert len(fixed) == len(data) and fixed[: len(INIT)] == INIT  # the one field, in place
    times = sorted(i * STEP + off for i, off in enumerate([placed, *offsets[1:]]))
    assert times == list(range(times[0], times[0] + STEP * len(offsets), STEP))  # every frame its own time
    assert fmp4_times.repair(fixed) == (fixed, 0)  # once put back, nothing more to do


def test_durations_given_per_sample_count_like_the_default() -> None:
    fixed, n = fmp4_times.repair(INIT + fragment(HEVC, durations=[STEP] * len(HEVC), default_duration=0))
    assert (n, first_offsets(fixed)) == (1, [2048])


def test_each_fragment_is_judged_alone_and_a_cut_off_last_fragment_still_counts() -> None:
    good, odd = fragment(HEVC), fragment([1024, 1024, 0, 3072, 1024, 0, 512])  # odd: two free places
    put_back = fmp4_times.repair(INIT + good)[0][len(INIT) :]
    data = INIT + good + odd + good[:-40]  # the last mdat cut off (a segment's head)
    assert fmp4_times.repair(data) == (INIT + put_back + odd + put_back[:-40], 2)


@pytest.mark.parametrize(
    ("why", "frag"),
    [
        ("no two samples share a time", fragment([2048, 1024, 0, 2560, 1024, 0, 512])),
        ("two free places: which one is not certain", fragment([1024, 1024, 0, 3072, 1024, 0, 512])),
        ("the keyframe shares a time, but not the earliest", fragment([1536, 1024, 0, 2560, 1024, 0, 512])),
        ("a frame off the grid", fragment([1024, 1024, 0, 2560, 1000, 0, 512])),
        ("a variable frame rate", fragment(HEVC[:7], durations=[512, 512, 512, 512, 256, 512, 512])),
        ("version 1: negative offsets allowed", fragment(HEVC, version=1)),
        ("the first sample is not a keyframe", fragment(HEVC, first=NON_SYNC)),
        ("too few samples to judge", fragment([0, 0])),
    ],
)
def test_a_fragment_of_any_other_shape_is_left_as_it_is(why: str, frag: bytes) -> None:
    data = INIT + frag
    assert fmp4_times.repair(data) == (data, 0), why


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"junk" * 10,
        fragment(HEVC),  # no init section
        box(b"ftyp", b"iso6") + box(b"moov", b"") + fragment(HEVC),  # no video track
        INIT + fragment(HEVC)[:60],  # the moof itself cut off
        INIT + box(b"moof", box(b"traf", b"\0\0\0\x07")),  # a child that does not fit
    ],
)
def test_bytes_it_cannot_read_come_back_unchanged(data: bytes) -> None:
    assert fmp4_times.repair(data) == (data, 0)


def test_offsets_spread_over_the_whole_32_bits_are_judged_without_walking_them() -> None:
    # a hostile fragment: a frame step of one tick and times 2^32 apart (a walk over every grid place
    # between them would take minutes)
    data = INIT + fragment([1, 0, 0xFFFFFFF0, 5], durations=[1, 1, 1, 1])  # the first shares time 1
    assert fmp4_times.repair(data) == (data, 0)


def test_hostile_bytes_never_raise_and_never_move_a_byte_but_the_one_field() -> None:
    # seeded: every single byte of the file flipped in turn, then 300 files with 8 random bytes changed
    base = INIT + fragment(HEVC) + fragment(INTRA_REFRESH)
    rng = random.Random(16)
    mutants = [base[:i] + bytes([base[i] ^ 0xFF]) + base[i + 1 :] for i in range(len(base))]
    for _ in range(300):
        data = bytearray(base)
        for _ in range(8):
            data[rng.randrange(len(data))] = rng.randrange(256)
        mutants.append(bytes(data))
    for data in mutants:
        fixed, n = fmp4_times.repair(data)
        changed = [i for i in range(len(data)) if fixed[i] != data[i]]
        assert len(fixed) == len(data) and 0 <= n <= 2 and len(changed) <= 4 * n
