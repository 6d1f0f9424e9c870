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
first slice does not say where it starts, a stream whose SPS allows interlaced
pictures (``frame_mbs_only_flag`` 0: ffprobe says whether its frames are, for the
cut to deinterlace them) or says they are HDR (its VUI's PQ or HLG transfer:
ffprobe names the colour, for the cut to tone-map them). Never a guess: a wrong key flag
would start decoding where it cannot, a wrong PTS would pick a wrong frame.
"""

from __future__ import annotations

from dataclasses import dataclass

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
_IDR, _SLICE, _SEI, _SPS = 5, 1, 6, 7
#: NAL unit types this reader does not follow: data partitions, SVC/MVC prefix and extensions.
_REFUSED_NALS = {2, 3, 4, 14, 15, 20, 21}
_RECOVERY_POINT = 6  # SEI payload type


class Unsure(Exception):
    """The stream is not the plain form: ffprobe decides."""


def video_packets(data: bytes) -> list[Packet] | None:
    """The first video stream's packets in decode order, or None when ffprobe must read the file."""
    try:
        return _read(data)
    except (Unsure, IndexError):
        return None


def _section(packet: bytes) -> bytes:
    """A PSI packet's whole section; raises Unsure for one that continues in the next packet."""
    section = psi_section(packet)
    if not whole_section(section):
        raise Unsure
    return section


def _video_pid(pmt: bytes) -> int:
    """The PMT's one H.264 stream; raises Unsure for other or several video streams."""
    video = [(kind, pid) for kind, pid in pmt_streams(pmt) if kind in VIDEO_STREAM_TYPES]
    if len(video) != 1 or video[0][0] != _H264:
        raise Unsure
    return video[0][1]


def ts_payload(packet: bytes) -> bytes:
    """A TS packet's payload (none when it carries only an adaptation field)."""
    start = payload_start(packet)
    if start > PACKET:
        raise Unsure
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
            raise Unsure
        this = ((packet[1] & 0x1F) << 8) | packet[2]
        start = bool(packet[1] & 0x40)
        if this == 0 and start and not programs:
            programs = pmt_pids(_section(packet))
            if len(programs) != 1:  # several programs: which video ffmpeg lists first is its choice
                raise Unsure
        elif this in programs and start and pid is None:
            pid = _video_pid(_section(packet))
        elif pid is None and start and ts_payload(packet)[:3] == b"\x00\x00\x01":
            raise Unsure  # a PES before its program tables: ffmpeg may or may not keep it
        if this != pid or pid is None:
            continue
        if packet[3] & 0x10:
            cc = packet[3] & 0x0F
            if last_cc is not None and cc != (last_cc + 1) % 16:
                raise Unsure
            last_cc = cc
        if start:
            if pes:
                out.append(_picture(b"".join(pes), pes_pos))
            pes, pes_pos = [], i
        if pes_pos >= 0:
            pes.append(ts_payload(packet))
    if pes:
        out.append(_picture(b"".join(pes), pes_pos))
    return out or None


def _pts(b: bytes) -> int:
    if not (b[0] & 1 and b[2] & 1 and b[4] & 1):  # marker bits
        raise Unsure
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _picture(pes: bytes, pos: int) -> Packet:
    """One PES: its PTS, and whether its one picture is an IDR picture."""
    if pes[:3] != b"\x00\x00\x01" or not 0xE0 <= pes[3] <= 0xEF or pes[6] & 0xC0 != 0x80:
        raise Unsure
    declared = pes[4] << 8 | pes[5]
    if declared and declared != len(pes) - 6:
        raise Unsure
    if not pes[7] & 0x80:  # no PTS
        raise Unsure
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


def nal_units(es: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (each from its header byte on)."""
    return [es[s:e] for s, e in nal_ranges(es)]


def _is_idr_picture(es: bytes) -> bool:
    pictures = 0
    idr = recovery = False
    for nal in nal_units(es):
        if not nal:
            continue
        kind = nal[0] & 0x1F
        if kind in _REFUSED_NALS:
            raise Unsure
        if kind in (_SLICE, _IDR):
            if len(nal) < 2:
                raise Unsure
            if nal[1] & 0x80:  # first_mb_in_slice is 0: a new picture starts
                pictures += 1
                if pictures == 1:
                    idr = kind == _IDR
            elif pictures == 0:  # a slice before any picture's first: not the plain form
                raise Unsure
        elif kind == _SEI and pictures == 0 and recovery_frame_cnt(nal[1:]) is not None:
            recovery = True
        elif kind == _SPS and _left_to_ffprobe(nal[1:]):
            raise Unsure
    if pictures != 1 or (recovery and not idr):
        raise Unsure
    return idr


def recovery_frame_cnt(payload: bytes) -> int | None:
    """A SEI NAL unit's recovery point's ``recovery_frame_cnt`` (``payload``: the unit after its header
    byte), or None when it holds no recovery point."""
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
            return _ue("".join(f"{b:08b}" for b in rbsp[i : i + size]), 0)[0]
        i += size
    return None


#: profile_idc values whose SPS carries chroma format, bit depths and scaling matrices (H.264 7.3.2.1.1).
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


#: VUI ``transfer_characteristics`` of HDR (H.264 Table E-4): 16 PQ (SMPTE ST 2084), 18 HLG (ARIB STD-B67).
HDR_TRANSFER_CODES = frozenset({16, 18})


def _left_to_ffprobe(sps: bytes) -> bool:
    """A stream this reader does not read: its pictures may be interlaced (ffprobe says whether they are,
    for the cut to deinterlace them) or are HDR (ffprobe names the colour, for the cut to tone-map)."""
    facts = sps_facts(sps)
    return not facts.frame_mbs_only or facts.transfer in HDR_TRANSFER_CODES


def frame_mbs_only(payload: bytes) -> bool:
    """An SPS NAL unit's ``frame_mbs_only_flag`` (``payload``: the unit after its header byte): False when
    the stream may code pictures as fields or field macroblock pairs (interlaced, PAFF or MBAFF).
    Raises ``Unsure`` for an SPS too short to say."""
    return sps_facts(payload).frame_mbs_only


@dataclass(frozen=True)
class SpsFacts:
    frame_mbs_only: bool
    #: the VUI's ``transfer_characteristics``; None when the SPS has no colour description
    transfer: int | None


def sps_facts(payload: bytes) -> SpsFacts:
    """An SPS NAL unit's ``frame_mbs_only_flag`` and VUI transfer characteristics (``payload``: the unit
    after its header byte; H.264 7.3.2.1.1 and E.1.1). Raises ``Unsure`` for an SPS too short to say."""
    rbsp = payload.replace(b"\x00\x00\x03", b"\x00\x00")
    bits = "".join(f"{b:08b}" for b in rbsp[:1024])  # far beyond any SPS up to its VUI's colour
    try:
        profile = rbsp[0]
        _, i = _ue(bits, 24)  # after profile_idc, constraint flags, level_idc: seq_parameter_set_id
        if profile in _HIGH_PROFILES:
            chroma, i = _ue(bits, i)
            i += chroma == 3  # separate_colour_plane_flag
            _, i = _ue(bits, i)  # bit_depth_luma_minus8
            _, i = _ue(bits, i)  # bit_depth_chroma_minus8
            i += 1  # qpprime_y_zero_transform_bypass_flag
            matrices, i = bits[i] == "1", i + 1
            if matrices:
                for n in range(12 if chroma == 3 else 8):
                    present, i = bits[i] == "1", i + 1
                    if present:
                        i = _skip_scaling_list(bits, i, 16 if n < 6 else 64)
        _, i = _ue(bits, i)  # log2_max_frame_num_minus4
        poc_type, i = _ue(bits, i)
        if poc_type == 0:
            _, i = _ue(bits, i)  # log2_max_pic_order_cnt_lsb_minus4
        elif poc_type == 1:
            i += 1  # delta_pic_order_always_zero_flag
            _, i = _ue(bits, i)  # offset_for_non_ref_pic (se)
            _, i = _ue(bits, i)  # offset_for_top_to_bottom_field (se)
            cycle, i = _ue(bits, i)
            for _ in range(cycle):
                _, i = _ue(bits, i)  # offset_for_ref_frame (se)
        _, i = _ue(bits, i)  # max_num_ref_frames
        i += 1  # gaps_in_frame_num_value_allowed_flag
        _, i = _ue(bits, i)  # pic_width_in_mbs_minus1
        _, i = _ue(bits, i)  # pic_height_in_map_units_minus1
        frames_only, i = bits[i] == "1", i + 1
        i += not frames_only  # mb_adaptive_frame_field_flag
        i += 1  # direct_8x8_inference_flag
        cropped, i = bits[i] == "1", i + 1
        for _ in range(4 if cropped else 0):
            _, i = _ue(bits, i)  # frame_crop_{left,right,top,bottom}_offset
        transfer = None
        vui, i = bits[i] == "1", i + 1
        if vui:
            aspect, i = bits[i] == "1", i + 1
            if aspect:
                idc, i = int(bits[i : i + 8], 2), i + 8
                i += 32 if idc == 255 else 0  # Extended_SAR: sar_width, sar_height
            overscan, i = bits[i] == "1", i + 1
            i += overscan  # overscan_appropriate_flag
            signal, i = bits[i] == "1", i + 1
            if signal:
                i += 4  # video_format, video_full_range_flag
                described, i = bits[i] == "1", i + 1
                if described:
                    if len(bits) < i + 16:
                        raise Unsure
                    transfer = int(bits[i + 8 : i + 16], 2)  # after colour_primaries
        return SpsFacts(frames_only, transfer)
    except (IndexError, ValueError) as exc:
        raise Unsure from exc


def _skip_scaling_list(bits: str, i: int, size: int) -> int:
    """The bit after a scaling_list() of ``size`` entries (H.264 7.3.2.1.1.1)."""
    last = following = 8
    for _ in range(size):
        if following:
            code, i = _ue(bits, i)
            delta = (code + 1) // 2 if code % 2 else -(code // 2)  # se(v)
            following = (last + delta + 256) % 256
        last = following or last
    return i


def _ue(bits: str, i: int) -> tuple[int, int]:
    """An Exp-Golomb ue(v) read from the bit string at ``i``: (value, the next bit's index)."""
    zeros = 0
    while bits[i + zeros] == "0":
        zeros += 1
    end = i + 2 * zeros + 1
    return int(bits[i + zeros : end], 2) - 1, end
