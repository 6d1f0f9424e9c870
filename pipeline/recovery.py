"""H.264 recovery points: from which display time decoding from a flagged keyframe gives whole pictures.

ffmpeg flags as a keyframe not only an IDR picture but also a picture behind a
recovery-point SEI. With x264's periodic intra refresh (``intra-refresh=1``,
low-latency encoders) there is no IDR after the first picture: each recovery
point is a P-frame whose SEI says the picture is whole only ``recovery_frame_cnt``
reference pictures later, once a column of intra blocks has swept across it.
ffmpeg drops the pictures decoded before that, so a cut started at such a
keyframe would hold a later frame where the dropped ones belong. ``clean_from``
says from which display time a keyframe serves; ``hls_inputs`` starts a window at
the latest keyframe that serves it (or reaches back to an earlier one). Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from .mpegts import PACKET
from .probe import Packet
from .ts_packets import Unsure, nal_units, recovery_frame_cnt, ts_payload

_IDR, _SLICE, _SEI = 5, 1, 6
#: How many TS packets of a PES are read for its first NAL units (SEIs and the first slice's header).
_HEAD_PACKETS = 16

#: A picture as ``clean_from`` needs it: (its recovery point's ``recovery_frame_cnt``, None without
#: one; whether it is a reference picture), from the byte position of its packet.
Picture = Callable[[int], tuple[int | None, bool]]


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
        parts.append(ts_payload(packet))
    pes = b"".join(parts)
    if pes[:3] != b"\x00\x00\x01" or len(pes) < 9:
        raise Unsure
    return pes[9 + pes[8] :]


def _picture_head(nals: Iterable[bytes]) -> tuple[int | None, bool]:
    """A picture's recovery-point SEI's ``recovery_frame_cnt`` (None without one) and whether it is a
    reference picture (``nal_ref_idc`` of its first slice), from its NAL units in order."""
    recovery = None
    for nal in nals:
        kind = nal[0] & 0x1F if nal else 0
        if kind == _SEI and recovery is None:
            recovery = recovery_frame_cnt(nal[1:])
        elif kind in (_SLICE, _IDR):
            return recovery, bool(nal[0] & 0x60)
    raise Unsure  # no slice in the picture's first bytes


def ts_picture(data: bytes) -> Picture:
    """For MPEG-TS ``data``: the picture of the PES at a byte position."""
    return lambda pos: _picture_head(nal_units(_pes_head(data, pos)))


def mp4_picture(data: bytes) -> Picture | None:
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
                raise Unsure
            yield data[pos + size : pos + size + length]
            pos += size + length

    return lambda pos: _picture_head(nals(pos))


def clean_from(picture: Picture, packets: Sequence[Packet], n: int) -> int | None:
    """The smallest display PTS from which decoding H.264 from its keyframe ``packets[n]`` gives whole
    pictures (``picture``: ``ts_picture`` or ``mp4_picture`` of the run's bytes).

    The keyframe's own PTS, unless it is a recovery point that recovers only later
    (``recovery_frame_cnt`` > 0). Then every picture decoded before the one whose ``frame_num`` is
    ``recovery_frame_cnt`` further (reference pictures each count one) is incomplete: the pictures
    shown from the latest display time of those on are whole (ffmpeg outputs the pictures shown from
    the recovered one on; the bound is that or later). None when that picture is not in ``packets``
    or a picture after the keyframe cannot be read: decode from an earlier keyframe. A keyframe whose
    own bytes cannot be read is taken as flagged (as before recovery points were read: an IDR picture
    with more than ``_HEAD_PACKETS`` packets of parameter sets and SEIs before its slice, say)."""
    key = packets[n]
    if key.pos is None:  # where its bytes are is unknown: taken as it is flagged
        return key.pts
    try:
        count, _ = picture(key.pos)
    except (Unsure, IndexError, ValueError):
        return key.pts
    if not count:
        return key.pts
    try:
        frame_num = 0  # of picture j, from the keyframe's: the reference pictures decoded before it
        for j in range(n, len(packets)):
            pos = packets[j].pos
            if pos is None:
                return None
            reference = picture(pos)[1]
            if frame_num == count and reference:  # the recovered picture (ffmpeg: a reference one)
                return max(p.pts for p in packets[n : j + 1])
            frame_num += reference
    except (Unsure, IndexError, ValueError):
        return None
    return None
