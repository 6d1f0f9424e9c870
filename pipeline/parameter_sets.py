"""H.264 parameter sets (SPS, PPS) carried to an MPEG-TS run that starts without them. Pure.

A run cut to start at a keyframe decodes only if the decoder has the stream's
parameter sets before that keyframe's first slice. Most encoders repeat them
before every keyframe; some send them only before IDR pictures (x264's open
GOPs: every later keyframe is a non-IDR I-picture) or once per segment. Then
the parameter sets last seen before the keyframe (in the run, else in the
first segment of its discontinuity) are put in front of the keyframe's
picture, inside its PES packet, which is packetised again; the PES keeps its
PTS and DTS, so the timestamps ffmpeg reads do not change. Only H.264 in a
single-program stream is handled; anything else is left as it is.
"""

from __future__ import annotations

from .mpegts import PACKET, SYNC, payload_start, pid_at, pmt_pids, pmt_streams, psi_section, whole_section
from .ts_packets import nal_ranges

_H264 = 0x1B
_SPS, _PPS, _AUD = 7, 8, 9
_START = b"\x00\x00\x00\x01"


def _video_pid(data: bytes) -> int | None:
    """The H.264 stream's PID when the stream has one program with one H.264 stream, else None."""
    pmts: list[int] = []
    for i in range(0, len(data) - PACKET + 1, PACKET):
        packet = data[i : i + PACKET]
        if packet[0] != SYNC or not packet[1] & 0x40:
            continue
        if pid_at(packet, 0) == 0 and not pmts:
            pat = psi_section(packet)
            pmts = pmt_pids(pat) if whole_section(pat) else []
            if len(pmts) != 1:
                return None
        elif pmts and pid_at(packet, 0) == pmts[0]:
            pmt = psi_section(packet)
            if not whole_section(pmt):
                return None  # a PMT longer than its packet, or damaged
            found = [pid for kind, pid in pmt_streams(pmt) if kind == _H264]
            return found[0] if len(found) == 1 else None
    return None


def _pes_list(data: bytes, pid: int, limit: int = 0) -> list[tuple[int, list[int], bytes]]:
    """The video PES packets (the first ``limit``, 0: all): (byte position of the TS packet that starts
    it, positions of its TS packets, its bytes)."""
    found: list[tuple[int, list[int], list[bytes]]] = []
    for i in range(0, len(data) - PACKET + 1, PACKET):
        packet = data[i : i + PACKET]
        if packet[0] != SYNC or pid_at(packet, 0) != pid or not packet[3] & 0x10:
            continue
        start = payload_start(packet)
        if start > PACKET:
            continue
        if packet[1] & 0x40:
            if limit and len(found) == limit:
                break
            found.append((i, [], []))
        if found:
            found[-1][1].append(i)
            found[-1][2].append(packet[start:])
    return [(first, members, b"".join(parts)) for first, members, parts in found]


def _es(pes: bytes) -> tuple[bytes, bytes] | None:
    """A video PES's header and its elementary stream bytes, or None when it is not a video PES."""
    if len(pes) < 9 or pes[:3] != b"\x00\x00\x01" or not 0xE0 <= pes[3] <= 0xEF:
        return None
    head = 9 + pes[8]
    return pes[:head], pes[head:]


def _kinds(es: bytes) -> list[int]:
    return [es[s] & 0x1F for s, e in nal_ranges(es) if e > s]


def _last_parameter_sets(pes_list: list[tuple[int, list[int], bytes]]) -> bytes | None:
    """The SPS and PPS NAL units of the last PES holding both, complete (each followed by another
    NAL unit: a PES cut short by a segment's head may end inside one), in Annex B with 4-byte starts."""
    for _, _, pes in reversed(pes_list):
        split = _es(pes)
        if split is None:
            continue
        es = split[1]
        units = [(es[s] & 0x1F, es[s:e]) for s, e in nal_ranges(es)[:-1] if e > s]
        sps = [u for k, u in units if k == _SPS]
        pps = [u for k, u in units if k == _PPS]
        if sps and pps:
            return b"".join(_START + u for u in (*sps, *pps))
    return None


def parameter_sets(data: bytes) -> bytes | None:
    """The last complete SPS and PPS of ``data``'s H.264 stream (Annex B), or None."""
    pid = _video_pid(data)
    return None if pid is None else _last_parameter_sets(_pes_list(data, pid))


def needs_parameter_sets(data: bytes) -> bool:
    """Whether ``data``'s first video PES (its keyframe) has no SPS or no PPS of its own."""
    pid = _video_pid(data)
    pes_list = [] if pid is None else _pes_list(data, pid, limit=1)
    split = _es(pes_list[0][2]) if pes_list else None
    if split is None:
        return False
    kinds = _kinds(split[1])
    return _SPS not in kinds or _PPS not in kinds


def _packetise(first: bytes, pes: bytes) -> list[bytes]:
    """``pes`` in TS packets: the first keeps ``first``'s header and adaptation field (its PCR, its
    random access flag), the last is filled up with adaptation-field stuffing."""
    start = payload_start(first)
    out = [first[:start] + pes[: PACKET - start]]
    rest = pes[PACKET - start :]
    if len(out[0]) < PACKET:  # the whole PES fitted in the first packet: stuff it
        return [_stuffed(first[:4], first[4:start], pes)]
    head = bytes([SYNC, first[1] & 0x1F, first[2], 0x10])  # no PUSI; counters renumbered after
    while rest:
        chunk, rest = rest[:184], rest[184:]
        out.append(head + chunk if len(chunk) == 184 else _stuffed(head, b"", chunk))
    return out


def _stuffed(header: bytes, adaptation: bytes, payload: bytes) -> bytes:
    """A packet with ``payload`` filling it up with stuffing bytes in its adaptation field."""
    room = PACKET - 4 - len(payload)
    if adaptation:  # keep the first packet's fields, stuff after them
        field = adaptation[1:] + b"\xff" * (room - len(adaptation))
    elif room == 1:
        field = b""
    else:
        field = b"\x00" + b"\xff" * (room - 2)
    return bytes([header[0], header[1], header[2], (header[3] & 0xCF) | 0x30, len(field)]) + field + payload


def with_parameter_sets(data: bytes, params: bytes) -> bytes:
    """``data`` with ``params`` (Annex B SPS and PPS) put before the first picture of its first video
    PES (after an access unit delimiter), that PES packetised again in place of its packets and the
    video continuity counters renumbered. ``data`` unchanged when it is not a plain H.264 stream."""
    pid = _video_pid(data)
    pes_list = [] if pid is None else _pes_list(data, pid, limit=1)
    if pid is None or not pes_list:
        return data
    first_at, members, pes = pes_list[0]
    split = _es(pes)
    if split is None:
        return data
    header, es = split
    units = nal_ranges(es)
    at = units[0][1] if units and es[units[0][0]] & 0x1F == _AUD else 0  # after the delimiter
    new_es = es[:at] + params + es[at:]
    length = header[4] << 8 | header[5]
    if length:
        length += len(params)
        length = length if length <= 0xFFFF else 0  # unbounded: allowed for video
    new_header = header[:4] + bytes([length >> 8, length & 0xFF]) + header[6:]
    rebuilt = _packetise(data[first_at : first_at + PACKET], new_header + new_es)
    gone = set(members)
    out = bytearray(data[:first_at])
    for packet in rebuilt:
        out += packet
    for i in range(first_at, len(data) - PACKET + 1, PACKET):
        if i not in gone:
            out += data[i : i + PACKET]
    return _renumbered(bytes(out), pid)


def _renumbered(data: bytes, pid: int) -> bytes:
    """``pid``'s continuity counters counting from 0 over its packets with a payload."""
    buf = bytearray(data)
    cc = 0
    for i in range(0, len(buf) - PACKET + 1, PACKET):
        if pid_at(buf, i) == pid and buf[i + 3] & 0x10:
            buf[i + 3] = (buf[i + 3] & 0xF0) | cc
            cc = (cc + 1) % 16
    return bytes(buf)
