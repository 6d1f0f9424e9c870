"""MPEG-TS joins: counters continue across segments, damage inside a segment stays visible."""

from __future__ import annotations

import pytest

from pipeline import mpegts


def packet(pid: int, cc: int, payload: bytes = b"", pusi: bool = False) -> bytes:
    head = bytes([0x47, (0x40 if pusi else 0) | pid >> 8, pid & 0xFF, 0x10 | cc])
    return (head + payload).ljust(188, b"\xff")


def ccs(data: bytes, pid: int) -> list[int]:
    return [data[i + 3] & 0x0F for i in range(0, len(data), 188) if mpegts.pid_at(data, i) == pid]


def test_join_continues_each_pids_counters_and_keeps_jumps_inside_a_segment() -> None:
    a = packet(0x100, 0) + packet(0x100, 1) + packet(0x101, 7)
    b = packet(0x100, 0) + packet(0x100, 1) + packet(0x100, 5) + packet(0x101, 0)  # restart; a jump 1 -> 5
    joined = mpegts.join([a, b])
    assert ccs(joined, 0x100) == [0, 1, 2, 3, 7]  # shifted by 2; the jump of 4 inside b is kept
    assert ccs(joined, 0x101) == [7, 8]


def test_check_refuses_truncated_or_unsynchronised_segments() -> None:
    good = packet(0x100, 0) * 3
    mpegts.check(good, "s")
    with pytest.raises(mpegts.NotTransportStream, match="truncated"):
        mpegts.check(good[:-10], "s")
    with pytest.raises(mpegts.NotTransportStream, match="sync"):
        mpegts.check(good[:188] + b"\x00" * 188, "s")
    with pytest.raises(mpegts.NotTransportStream, match="empty"):
        mpegts.check(b"", "s")


def test_from_position_puts_the_program_tables_first() -> None:
    pat_payload = bytes([0, 0x00, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, 0xF0, 0x00]) + b"\0\0\0\0"
    pmt = packet(0x1000, 0, b"\x00\x02", pusi=True)
    data = packet(0, 0, pat_payload, pusi=True) + pmt + packet(0x100, 0) + packet(0x100, 1, b"K")
    out = mpegts.from_position(data, 3 * 188)
    assert [mpegts.pid_at(out, i) for i in range(0, len(out), 188)] == [0, 0x1000, 0x100]
    assert out[-188:] == data[-188:]
    with pytest.raises(mpegts.NotTransportStream):
        mpegts.from_position(data, 100)


def test_a_suffix_far_from_the_wrap_reads_the_same_and_needs_no_probe() -> None:
    assert mpegts.suffix_reads_the_same([900_000 + 3000 * i for i in range(240)])
    assert mpegts.suffix_reads_the_same([0, 3000, 6000])


def test_a_run_across_or_near_the_timestamp_wrap_is_probed_again() -> None:
    wrap = mpegts.PTS_WRAP
    # ffmpeg read it with the wrap added (timestamps past 2^33) or subtracted (negative)
    assert not mpegts.suffix_reads_the_same([wrap - 3000, wrap, wrap + 3000])
    assert not mpegts.suffix_reads_the_same([-3000, 0, 3000])
    # raw, but in the last eighth of the counter, where ffmpeg subtracts the wrap after the first packet
    assert not mpegts.suffix_reads_the_same([wrap - 90_000 * 600, wrap - 90_000 * 599])
    # longer than the 60 s between a file's first timestamp and ffmpeg's wrap reference
    assert not mpegts.suffix_reads_the_same([90_000 * 100, 90_000 * 160])
    assert not mpegts.suffix_reads_the_same([])
