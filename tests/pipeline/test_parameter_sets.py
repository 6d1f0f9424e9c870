"""H.264 parameter sets carried to a run that starts without them, on hand-made streams.

(On a real open-GOP stream, frame by frame: tests/integration/test_hls_variants.py, variant open_gop.)
"""

from __future__ import annotations

from pipeline import parameter_sets, ts_packets
from pipeline.mpegts import PACKET

from .test_ts_packets import AUD, IDR, PAT, VIDEO, P, pes, pmt, stream, ts

# x264's (High profile, 160x96, progressive: the MPEG-TS reader reads its pictures) and a PPS
SPS = b"\x00\x00\x00\x01" + bytes.fromhex("6764000bacd9428db0110000030001000003003c0f142996")
PPS = b"\x00\x00\x00\x01\x68\xee\x3c\x80"
I_NON_IDR = b"\x00\x00\x01\x21\x88" + b"\x55" * 300  # a picture of two TS packets, no parameter sets


def video_pes(data: bytes) -> list[bytes]:
    """Each video PES's bytes, joined from its TS packets' payloads."""
    out: list[bytes] = []
    for i in range(0, len(data), PACKET):
        p = data[i : i + PACKET]
        if ((p[1] & 0x1F) << 8 | p[2]) != VIDEO:
            continue
        start = 5 + p[4] if p[3] & 0x20 else 4
        if p[1] & 0x40:
            out.append(p[start:])
        else:
            out[-1] += p[start:]
    return out


def test_the_last_complete_parameter_sets_are_found_and_a_keyframe_without_them_is_seen() -> None:
    first = stream(pes(0, AUD + SPS + PPS + IDR), pes(3000, AUD + P))
    assert parameter_sets.parameter_sets(first) == SPS + PPS
    assert not parameter_sets.needs_parameter_sets(first)
    later = stream(pes(90000, AUD + I_NON_IDR), pes(93000, AUD + P))
    assert parameter_sets.needs_parameter_sets(later)
    assert parameter_sets.parameter_sets(later) is None
    # a head cut inside the PPS (the last NAL unit of what arrived) has no complete pair
    assert parameter_sets.parameter_sets(stream(pes(0, AUD + SPS + PPS[:6]))) is None


def test_parameter_sets_go_after_the_delimiter_of_the_first_picture_timestamps_unchanged() -> None:
    later = stream(pes(90000, AUD + I_NON_IDR), pes(93000, AUD + P))
    fixed = parameter_sets.with_parameter_sets(later, SPS + PPS)
    assert len(fixed) % PACKET == 0
    first, second = video_pes(fixed)
    assert first == pes(90000, AUD + SPS + PPS + I_NON_IDR)  # its PTS, its length field grown
    assert second == pes(93000, AUD + P)
    assert not parameter_sets.needs_parameter_sets(fixed)
    # the same pictures at the same timestamps, continuity counters unbroken (else None: declined)
    before, after = ts_packets.video_packets(later), ts_packets.video_packets(fixed)
    assert before is not None and after is not None
    assert [(p.pts, p.key) for p in after] == [(p.pts, p.key) for p in before]


def test_the_first_packets_adaptation_field_is_kept_and_the_last_one_stuffed() -> None:
    # Given a keyframe PES whose first packet carries a PCR in its adaptation field
    body = pes(90000, I_NON_IDR)
    adaptation = bytes([7, 0x50]) + b"\x00\x00\x2b\xf2\x7e\x00"  # random access + PCR
    first = bytes([0x47, 0x40 | VIDEO >> 8, VIDEO & 0xFF, 0x30]) + adaptation
    first += body[: PACKET - len(first)]
    rest = body[PACKET - 4 - len(adaptation) :]
    data = PAT + pmt((0x1B, VIDEO)) + first
    for n, i in enumerate(range(0, len(rest), 184)):
        data += ts(VIDEO, (n + 1) % 16, rest[i : i + 184], start=False)
    fixed = parameter_sets.with_parameter_sets(data, SPS + PPS)
    packets = [fixed[i : i + PACKET] for i in range(0, len(fixed), PACKET)]
    video = [p for p in packets if ((p[1] & 0x1F) << 8 | p[2]) == VIDEO]
    assert video[0][4 : 4 + len(adaptation)] == adaptation  # PCR and random access flag kept
    assert video[0][1] & 0x40 and not any(p[1] & 0x40 for p in video[1:])
    assert [p[3] & 0x0F for p in video] == list(range(len(video)))
    assert video_pes(fixed) == [pes(90000, SPS + PPS + I_NON_IDR)]  # no delimiter: in front


def test_other_streams_are_left_as_they_are() -> None:
    no_video = PAT + pmt((0x0F, 0x101))
    assert parameter_sets.with_parameter_sets(no_video, SPS + PPS) == no_video
    hevc = stream(pes(0, AUD + I_NON_IDR), tables=PAT + pmt((0x24, VIDEO)))
    assert parameter_sets.with_parameter_sets(hevc, SPS + PPS) == hevc
    assert not parameter_sets.needs_parameter_sets(hevc)
