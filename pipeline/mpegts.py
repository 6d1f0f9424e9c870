"""MPEG-TS at the packet level: join segments into one stream and start it at a keyframe. Pure.

Segments muxed one at a time restart their continuity counters, and ffmpeg
flags the jump as corruption (``-xerror`` makes it fatal). ``join`` renumbers
each joined segment's counters, per PID, so that they continue the previous
segment's: a jump *inside* a segment (real damage) is left as it is and still
stops the cut. ``from_position`` starts a stream at a keyframe's packet,
behind the PAT and PMT it needs.
"""

from __future__ import annotations

from collections.abc import Iterable

PACKET = 188
SYNC = 0x47
#: PTS are 33-bit counters of a 90 kHz clock.
PTS_WRAP = 1 << 33
#: ffmpeg's demuxer places its wrap reference 60 s before a file's first timestamp and, for a first
#: timestamp within the last eighth of the counter, subtracts the wrap from timestamps after it.
_WRAP_REFERENCE_TICKS = 60 * 90_000
#: Margin for the first packet being another stream's (audio) or a decode timestamp: 10 s.
_MARGIN_TICKS = 10 * 90_000


class NotTransportStream(ValueError):
    """The bytes are not whole 188-byte MPEG-TS packets."""


def check(data: bytes, name: str) -> None:
    """Raise NotTransportStream unless ``data`` is whole packets, each starting with the sync byte."""
    if not data:
        raise NotTransportStream(f"{name} is empty")
    if len(data) % PACKET:
        raise NotTransportStream(f"{name} is {len(data)} bytes, not whole 188-byte packets (truncated?)")
    if any(data[i] != SYNC for i in range(0, len(data), PACKET)):
        raise NotTransportStream(f"{name} lost MPEG-TS sync (garbage or not MPEG-TS)")


def pid_at(data: bytes | bytearray, i: int) -> int:
    """The PID of the packet at byte ``i``."""
    return ((data[i + 1] & 0x1F) << 8) | data[i + 2]


def payload_start(packet: bytes) -> int:
    """Where a packet's payload starts: after its adaptation field, if it has one."""
    return 5 + packet[4] if packet[3] & 0x20 else 4


def _has_payload(data: bytes | bytearray, i: int) -> bool:
    return bool(data[i + 3] & 0x10)


def join(segments: Iterable[bytes]) -> bytes:
    """Concatenate segments with each segment's continuity counters shifted to continue the previous."""
    out = bytearray()
    last_cc: dict[int, int] = {}  # pid -> last counter written on a packet with payload
    for seg in segments:
        buf = bytearray(seg)
        shift: dict[int, int] = {}
        for i in range(0, len(buf), PACKET):
            pid = pid_at(buf, i)
            if pid == 0x1FFF or not _has_payload(buf, i):
                continue
            cc = buf[i + 3] & 0x0F
            if pid not in shift:
                shift[pid] = (last_cc[pid] + 1 - cc) % 16 if pid in last_cc else 0
            cc = (cc + shift[pid]) % 16
            buf[i + 3] = (buf[i + 3] & 0xF0) | cc
            last_cc[pid] = cc
        out += buf
    return bytes(out)


def psi_section(packet: bytes) -> bytes:
    """A PSI packet's section (after the adaptation and pointer fields), as far as the packet holds it:
    shorter than its declared length (3 + the length field) when it continues in the next packet; empty
    when the adaptation or pointer field points past the packet (a damaged table, which ffmpeg skips)."""
    if len(packet) < 5:
        return b""
    start = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
    if start >= len(packet):
        return b""
    start += 1 + packet[start]
    if start + 3 > len(packet):
        return b""
    length = ((packet[start + 1] & 0x0F) << 8) | packet[start + 2]
    return packet[start : start + 3 + length]


def whole_section(section: bytes) -> bool:
    """True when ``section`` (from ``psi_section``) holds all of its declared length: the only kind
    whose entries are read (one cut short continues in the next packet, or is damage)."""
    return len(section) >= 3 and len(section) >= 3 + (((section[1] & 0x0F) << 8) | section[2])


def pmt_pids(pat: bytes) -> list[int]:
    """The PMT PIDs a PAT section names, in its order (program 0, the network PID, left out)."""
    entries = pat[8:-4]
    return [
        ((entries[j + 2] & 0x1F) << 8) | entries[j + 3]
        for j in range(0, len(entries) - 3, 4)
        if (entries[j] << 8 | entries[j + 1]) != 0
    ]


def pmt_streams(pmt: bytes) -> list[tuple[int, int]]:
    """(stream type, PID) of each elementary stream a PMT section lists, in its order."""
    if len(pmt) < 16:  # header, program info length and CRC: no stream
        return []
    info_len = ((pmt[10] & 0x0F) << 8) | pmt[11]
    i, end, out = 12 + info_len, len(pmt) - 4, []
    while i + 5 <= end:
        out.append((pmt[i], ((pmt[i + 1] & 0x1F) << 8) | pmt[i + 2]))
        i += 5 + (((pmt[i + 3] & 0x0F) << 8) | pmt[i + 4])
    return out


def _program_tables(data: bytes) -> list[bytes]:
    """The first readable PAT packet (a whole section naming a PMT; a damaged one is passed over, as
    ffmpeg does) and the first packet of each PMT it names; empty when the stream has no such PAT."""
    for at in range(0, len(data) - PACKET + 1, PACKET):
        p = data[at : at + PACKET]
        if pid_at(p, 0) != 0 or not p[1] & 0x40:
            continue
        section = psi_section(p)
        pids = sorted(set(pmt_pids(section))) if whole_section(section) else []
        if not pids:
            continue
        tables = [p]
        for pid in pids:
            i = next((i for i in range(0, len(data) - PACKET + 1, PACKET) if pid_at(data, i) == pid), None)
            if i is not None:
                tables.append(data[i : i + PACKET])
        return tables
    return []


#: PMT stream types of video: MPEG-1/2, MPEG-4 part 2, H.264, HEVC, and the rarer ones ffmpeg knows.
VIDEO_STREAM_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x24, 0x42, 0xD1, 0xEA})


def video_stream_types(data: bytes) -> tuple[int, ...]:
    """The stream types of the video streams the first PMT lists (empty without PAT or PMT, or with a
    table cut short): what codec a segment's video is in, read from its program tables alone."""
    try:
        pmts = _program_tables(data)[1:]
        return tuple(k for pmt in pmts for k, _ in pmt_streams(psi_section(pmt)) if k in VIDEO_STREAM_TYPES)
    except IndexError:
        return ()


def suffix_reads_the_same(pts: tuple[int, ...] | list[int]) -> bool:
    """True when any suffix of a stream whose video timestamps (as ffmpeg reads the whole stream) are
    ``pts`` is read by ffmpeg with the same timestamps, so ``from_position`` needs no probe after it.

    ffmpeg reads raw PTS unchanged unless its wrap correction applies: it does not when every timestamp
    is a raw one (in [0, 2^33)), they span well under the 60 s between a file's first timestamp and its
    wrap reference, and none is in the last eighth of the counter (where it subtracts). Otherwise (a run
    across a wrap, or near one) the caller probes the suffix.
    """
    if not pts:
        return False
    low, high = min(pts), max(pts)
    return (
        low >= 0
        and high < PTS_WRAP - (PTS_WRAP >> 3) - _MARGIN_TICKS
        and high - low < _WRAP_REFERENCE_TICKS - _MARGIN_TICKS
    )


def from_position(data: bytes, pos: int) -> bytes:
    """The stream from the packet at byte ``pos`` on, behind copies of its PAT and PMT packets."""
    if pos % PACKET or not 0 <= pos < len(data):
        raise NotTransportStream(f"position {pos} is not a packet boundary of the stream")
    if pos == 0:
        return data
    tables = _program_tables(data)
    if not tables:
        raise NotTransportStream("the stream has no readable PAT to start it at a keyframe with")
    return b"".join(tables) + data[pos:]
