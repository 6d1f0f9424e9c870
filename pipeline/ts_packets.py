"""An MPEG-TS file's H.264 video packets read in Python, as ffprobe lists them, or None when unsure. Pure.

A clip used to run ffprobe on its joined segments only to learn each video
packet's PTS, key flag and byte position: about 55 ms of CPU per clip, almost
all of it ffprobe starting up. For the plain form every HLS packager writes
(one H.264 picture per PES packet, each PES with a PTS) those three values are
read here from the bytes, and they are the ones ffprobe reports:

- ``pts``: the PES header's PTS (raw; ``mpegts.suffix_reads_the_same`` tells
  the caller when ffmpeg would read it unchanged);
- ``pos``: the byte position of the TS packet that starts the PES;
- ``key``: the picture is an IDR picture (ffmpeg's H.264 parser also flags a
  picture behind a recovery-point SEI; such a stream is left to ffprobe).

Anything else returns None and the caller asks ffprobe: another codec, more
than one video stream or program, a PES before the program tables, scrambled
or errored packets, a continuity jump, a PES
without a PTS or with a length it does not have, a PES holding no picture or
several (fields, packed frames), data partitioning, SVC/MVC, a picture whose
first slice does not say where it starts. Never a guess: a wrong key flag
would start decoding where it cannot, a wrong PTS would pick a wrong frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from .mpegts import (
    PACKET,
    SYNC,
    VIDEO_STREAM_TYPES,
    payload_start,
    pmt_pids,
    pmt_streams,
    psi_section,
    whole_section,
)
from .probe import Packet

#: Of the PMT's video stream types (``mpegts.VIDEO_STREAM_TYPES``), only H.264 is read here.
_H264 = 0x1B
_IDR, _SLICE, _SEI = 5, 1, 6
#: NAL unit types this reader does not follow: data partitions, SVC/MVC prefix and extensions.
_REFUSED_NALS = {2, 3, 4, 14, 15, 20, 21}
_RECOVERY_POINT = 6  # SEI payload type


class _Unsure(Exception):
    """The stream is not the plain form: ffprobe decides."""


def video_packets(data: bytes) -> list[Packet] | None:
    """The first video stream's packets in decode order, or None when ffprobe must read the file."""
    try:
        return _read(data)
    except (_Unsure, IndexError):
        return None


def _section(packet: bytes) -> bytes:
    """A PSI packet's whole section; raises _Unsure for one that continues in the next packet."""
    section = psi_section(packet)
    if not whole_section(section):
        raise _Unsure
    return section


def _video_pid(pmt: bytes) -> int:
    """The PMT's one H.264 stream; raises _Unsure for other or several video streams."""
    video = [(kind, pid) for kind, pid in pmt_streams(pmt) if kind in VIDEO_STREAM_TYPES]
    if len(video) != 1 or video[0][0] != _H264:
        raise _Unsure
    return video[0][1]


def _payload(packet: bytes) -> bytes:
    start = payload_start(packet)
    if start > PACKET:
        raise _Unsure
    return packet[start:] if start == 4 or packet[3] & 0x10 else b""


def _read(data: bytes) -> list[Packet] | None:
    if not data or len(data) % PACKET:
        return None
    programs: list[int] = []  # PMT PIDs
    pid: int | None = None
    last_cc: int | None = None
    pes: list[bytes] = []
    pes_pos = -1
    out: list[Packet] = []
    for i in range(0, len(data), PACKET):
        packet = data[i : i + PACKET]
        if packet[0] != SYNC or packet[1] & 0x80 or packet[3] & 0xC0:  # sync, error, scrambled
            raise _Unsure
        this = ((packet[1] & 0x1F) << 8) | packet[2]
        start = bool(packet[1] & 0x40)
        if this == 0 and start and not programs:
            programs = pmt_pids(_section(packet))
            if len(programs) != 1:  # several programs: which video ffmpeg lists first is its choice
                raise _Unsure
        elif this in programs and start and pid is None:
            pid = _video_pid(_section(packet))
        elif pid is None and start and _payload(packet)[:3] == b"\x00\x00\x01":
            raise _Unsure  # a PES before its program tables: ffmpeg may or may not keep it
        if this != pid or pid is None:
            continue
        if packet[3] & 0x10:
            cc = packet[3] & 0x0F
            if last_cc is not None and cc != (last_cc + 1) % 16:
                raise _Unsure
            last_cc = cc
        if start:
            if pes:
                out.append(_picture(b"".join(pes), pes_pos))
            pes, pes_pos = [], i
        if pes_pos >= 0:
            pes.append(_payload(packet))
    if pes:
        out.append(_picture(b"".join(pes), pes_pos))
    return out or None


def _pts(b: bytes) -> int:
    if not (b[0] & 1 and b[2] & 1 and b[4] & 1):  # marker bits
        raise _Unsure
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _picture(pes: bytes, pos: int) -> Packet:
    """One PES: its PTS, and whether its one picture is an IDR picture."""
    if pes[:3] != b"\x00\x00\x01" or not 0xE0 <= pes[3] <= 0xEF or pes[6] & 0xC0 != 0x80:
        raise _Unsure
    declared = pes[4] << 8 | pes[5]
    if declared and declared != len(pes) - 6:
        raise _Unsure
    if not pes[7] & 0x80:  # no PTS
        raise _Unsure
    pts = _pts(pes[9:14])
    return Packet(pts, _is_idr_picture(pes[9 + pes[8] :]), pos)


def nal_ranges(es: bytes) -> list[tuple[int, int]]:
    """Where each NAL unit of an Annex B byte stream lies: (its header byte, its end), the end before
    the next start code (and before the zero byte of a 4-byte one)."""
    starts: list[int] = []
    i = es.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = es.find(b"\x00\x00\x01", i + 3)
    ends = [s - 3 - (1 if s >= 4 and es[s - 4] == 0 else 0) for s in starts[1:]] + [len(es)]
    return list(zip(starts, ends, strict=False))  # no start code: no unit


def _nal_units(es: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (each from its header byte on)."""
    return [es[s:e] for s, e in nal_ranges(es)]


def _is_idr_picture(es: bytes) -> bool:
    pictures = 0
    idr = recovery = False
    for nal in _nal_units(es):
        if not nal:
            continue
        kind = nal[0] & 0x1F
        if kind in _REFUSED_NALS:
            raise _Unsure
        if kind in (_SLICE, _IDR):
            if len(nal) < 2:
                raise _Unsure
            if nal[1] & 0x80:  # first_mb_in_slice is 0: a new picture starts
                pictures += 1
                if pictures == 1:
                    idr = kind == _IDR
            elif pictures == 0:  # a slice before any picture's first: not the plain form
                raise _Unsure
        elif kind == _SEI and pictures == 0 and _has_recovery_point(nal[1:]):
            recovery = True
    if pictures != 1 or (recovery and not idr):
        raise _Unsure
    return idr


def _has_recovery_point(payload: bytes) -> bool:
    rbsp = payload.replace(b"\x00\x00\x03", b"\x00\x00")
    i = 0
    while i < len(rbsp) and rbsp[i] != 0x80:  # 0x80: rbsp_trailing_bits
        kind = size = 0
        while rbsp[i] == 0xFF:
            kind, i = kind + 255, i + 1
        kind, i = kind + rbsp[i], i + 1
        while rbsp[i] == 0xFF:
            size, i = size + 255, i + 1
        size, i = size + rbsp[i], i + 1
        if kind == _RECOVERY_POINT:
            return True
        i += size
    return False


#: How many TS packets of a PES are read for its first NAL units (SEIs and the first slice's header).
_HEAD_PACKETS = 16


def _pes_head(data: bytes, pos: int) -> bytes:
    """The start of the elementary stream carried by the PES whose first TS packet is at ``pos``."""
    pid = ((data[pos + 1] & 0x1F) << 8) | data[pos + 2]
    parts: list[bytes] = []
    for i in range(pos, len(data) - PACKET + 1, PACKET):
        packet = data[i : i + PACKET]
        if ((packet[1] & 0x1F) << 8) | packet[2] != pid:
            continue
        if i > pos and packet[1] & 0x40 or len(parts) == _HEAD_PACKETS:
            break
        parts.append(_payload(packet))
    pes = b"".join(parts)
    if pes[:3] != b"\x00\x00\x01" or len(pes) < 9:
        raise _Unsure
    return pes[9 + pes[8] :]


def _ue(bits: str, i: int) -> tuple[int, int]:
    """An Exp-Golomb ue(v) read from the bit string at ``i``: (value, the next bit's index)."""
    zeros = 0
    while bits[i + zeros] == "0":
        zeros += 1
    end = i + 2 * zeros + 1
    return int(bits[i + zeros : end], 2) - 1, end


def _recovery_frame_cnt(payload: bytes) -> int | None:
    """A SEI NAL unit's recovery point's ``recovery_frame_cnt`` (payload after the NAL header), or None."""
    rbsp = payload.replace(b"\x00\x00\x03", b"\x00\x00")
    i = 0
    while i < len(rbsp) and rbsp[i] != 0x80:
        kind = size = 0
        while rbsp[i] == 0xFF:
            kind, i = kind + 255, i + 1
        kind, i = kind + rbsp[i], i + 1
        while rbsp[i] == 0xFF:
            size, i = size + 255, i + 1
        size, i = size + rbsp[i], i + 1
        if kind == _RECOVERY_POINT:
            return _ue("".join(f"{b:08b}" for b in rbsp[i : i + size]), 0)[0]
        i += size
    return None


def _picture_head(nals: Iterable[bytes]) -> tuple[int | None, bool]:
    """A picture's recovery-point SEI's ``recovery_frame_cnt`` (None without one) and whether it is a
    reference picture (``nal_ref_idc`` of its first slice), from its NAL units in order."""
    recovery = None
    for nal in nals:
        kind = nal[0] & 0x1F if nal else 0
        if kind == _SEI and recovery is None:
            recovery = _recovery_frame_cnt(nal[1:])
        elif kind in (_SLICE, _IDR):
            return recovery, bool(nal[0] & 0x60)
    raise _Unsure  # no slice in the picture's first bytes


def ts_picture(data: bytes) -> Callable[[int], tuple[int | None, bool]]:
    """For MPEG-TS ``data``: the picture of the PES at a byte position, as ``_picture_head`` reads it."""
    return lambda pos: _picture_head(_nal_units(_pes_head(data, pos)))


def mp4_picture(data: bytes) -> Callable[[int], tuple[int | None, bool]] | None:
    """For an MP4 file ``data`` (init section and fragments) in H.264 ``avc1``-style samples
    (NAL units behind big-endian lengths, their size from the ``avcC`` box): the picture of the sample
    at a byte position; None without an ``avcC`` box."""
    at = data.find(b"avcC")
    if at < 0 or at + 9 > len(data):
        return None
    size = (data[at + 8] & 3) + 1

    def nals(pos: int) -> Iterator[bytes]:
        for _ in range(64):
            length = int.from_bytes(data[pos : pos + size], "big")
            if not length or pos + size + length > len(data):
                raise _Unsure
            yield data[pos + size : pos + size + length]
            pos += size + length

    return lambda pos: _picture_head(nals(pos))


def clean_from(
    picture: Callable[[int], tuple[int | None, bool]], packets: Sequence[Packet], n: int
) -> int | None:
    """The smallest display PTS from which decoding H.264 from its keyframe ``packets[n]`` gives whole
    pictures (``picture``: ``ts_picture`` or ``mp4_picture`` of the run's bytes): the keyframe's own
    PTS, unless it is a recovery point that recovers only later (``recovery_frame_cnt`` > 0: x264's
    periodic intra refresh, whose P-frame starts a sweep of intra blocks across the picture). Then
    every picture decoded before the one whose ``frame_num`` is ``recovery_frame_cnt`` further
    (reference pictures each count one) is incomplete, and ffmpeg drops it: the pictures shown from
    the latest display time of those on are whole. None when that picture is not in ``packets`` or the
    bytes cannot be read (start earlier)."""
    try:
        if packets[n].pos is None:  # where its bytes are is unknown: taken as it is flagged
            return packets[n].pts
        count, _ = picture(packets[n].pos or 0)
        if not count:
            return packets[n].pts
        frame_num = 0
        for j in range(n, len(packets)):
            if frame_num == count:
                return max(p.pts for p in packets[n : j + 1])
            if packets[j].pos is None:
                return None
            frame_num += picture(packets[j].pos or 0)[1]
    except (_Unsure, IndexError, ValueError):
        return None
    return None
