"""The Python MPEG-TS reader on hand-made streams: what it reads, and every form it leaves to ffprobe.

(Parity with ffprobe on real muxers' output: tests/integration/test_ts_packets.py.)
"""

from __future__ import annotations

import random

import pytest

from pipeline import ts_packets
from pipeline.probe import Packet

VIDEO = 0x100
AUD = b"\x00\x00\x00\x01\x09\xf0"
IDR = b"\x00\x00\x01\x65\x88" + b"\x11" * 40  # first_mb_in_slice 0
P = b"\x00\x00\x01\x41\x9a" + b"\x22" * 40
P_SECOND_SLICE = b"\x00\x00\x01\x41\x40" + b"\x33" * 10  # first_mb_in_slice > 0
RECOVERY_SEI = b"\x00\x00\x01\x06\x06\x01\x84\x80"  # payload type 6 (recovery point), size 1


def ts(pid: int, cc: int, payload: bytes, *, start: bool, flags: int = 0) -> bytes:
    head = bytes([0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF, 0x10 | cc | flags])
    room = 184 - len(payload)
    if room == 0:
        return head + payload
    adaptation = bytes([room - 1]) + (b"\x00" + b"\xff" * (room - 2) if room > 1 else b"")
    head = head[:3] + bytes([head[3] | 0x20])
    return head + adaptation + payload


def section(table_id: int, body: bytes) -> bytes:
    length = 5 + len(body) + 4
    return b"\x00" + bytes([table_id, 0xB0 | length >> 8, length & 0xFF, 0, 1, 0xC1, 0, 0]) + body + b"\0" * 4


PAT = ts(0, 0, section(0, b"\x00\x01\xf0\x00"), start=True)  # program 1 -> PMT pid 0x1000


def pmt(*streams: tuple[int, int]) -> bytes:
    body = b"\xe1\x00\xf0\x00" + b"".join(bytes([t, 0xE0 | p >> 8, p & 0xFF, 0xF0, 0]) for t, p in streams)
    return ts(0x1000, 0, section(2, body), start=True)


def pts_bytes(pts: int) -> bytes:
    return bytes(
        [
            0x21 | (pts >> 29) & 0x0E,
            (pts >> 22) & 0xFF,
            0x01 | (pts >> 14) & 0xFE,
            (pts >> 7) & 0xFF,
            0x01 | (pts << 1) & 0xFE,
        ]
    )


def pes(pts: int | None, es: bytes, declared: int | None = 0) -> bytes:
    header = (b"\x80\x80\x05" + pts_bytes(pts)) if pts is not None else b"\x80\x00\x00"
    body = header + es
    length = len(body) if declared is None else declared
    return b"\x00\x00\x01\xe0" + bytes([length >> 8, length & 0xFF]) + body


def stream(*pictures: bytes, tables: bytes | None = None, first_cc: int = 0) -> bytes:
    out = tables if tables is not None else PAT + pmt((0x1B, VIDEO), (0x0F, 0x101))
    cc = first_cc
    for p in pictures:
        for i in range(0, len(p), 184):
            out += ts(VIDEO, cc % 16, p[i : i + 184], start=i == 0)
            cc += 1
    return out


def test_reads_pts_key_and_position_of_each_picture() -> None:
    data = stream(pes(900_000, AUD + IDR), pes(903_000, AUD + P), pes(906_000, AUD + P + P_SECOND_SLICE))
    assert ts_packets.video_packets(data) == [
        Packet(900_000, True, 2 * 188),
        Packet(903_000, False, 3 * 188),
        Packet(906_000, False, 4 * 188),
    ]


def test_a_pes_spanning_packets_is_one_picture_at_its_first_packet() -> None:
    big = AUD + IDR + b"\x44" * 500
    data = stream(pes(0, big), pes(3000, AUD + P))
    assert ts_packets.video_packets(data) == [Packet(0, True, 2 * 188), Packet(3000, False, 6 * 188)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(stream(pes(0, AUD + IDR), pes(None, AUD + P)), id="a PES without PTS"),
        pytest.param(stream(pes(0, AUD + IDR + P)), id="two pictures in one PES"),
        pytest.param(stream(pes(0, AUD)), id="no picture in a PES"),
        pytest.param(stream(pes(0, AUD + P_SECOND_SLICE)), id="a picture without its first slice"),
        pytest.param(stream(pes(0, AUD + RECOVERY_SEI + P)), id="a recovery point on a non-IDR picture"),
        pytest.param(stream(pes(0, AUD + b"\x00\x00\x01\x14\x80")), id="an MVC extension"),
        pytest.param(stream(pes(0, AUD + IDR, declared=300)), id="a PES shorter than it says"),
        pytest.param(stream(pes(0, AUD + IDR), tables=PAT + pmt((0x24, VIDEO))), id="HEVC"),
        pytest.param(
            stream(pes(0, AUD + IDR), tables=PAT + pmt((0x1B, VIDEO), (0x1B, 0x102))), id="two video streams"
        ),
        pytest.param(stream(pes(0, AUD + IDR), tables=b""), id="no program tables"),
        pytest.param(b"", id="empty"),
        pytest.param(stream(pes(0, AUD + IDR))[:-5], id="not whole packets"),
    ],
)
def test_declines_what_it_does_not_follow(data: bytes) -> None:
    assert ts_packets.video_packets(data) is None


def test_declines_a_continuity_jump_and_a_scrambled_or_errored_packet() -> None:
    good = stream(pes(0, AUD + IDR), pes(3000, AUD + P))
    assert ts_packets.video_packets(good) is not None
    jumped = bytearray(good)
    jumped[3 * 188 + 3] = (jumped[3 * 188 + 3] & 0xF0) | 5
    assert ts_packets.video_packets(bytes(jumped)) is None
    for byte, bit in ((3, 0x80), (1, 0x80)):  # scrambling control; transport error indicator
        marked = bytearray(good)
        marked[2 * 188 + byte] |= bit
        assert ts_packets.video_packets(bytes(marked)) is None


def test_an_idr_picture_behind_a_recovery_point_is_read() -> None:
    data = stream(pes(0, AUD + RECOVERY_SEI + IDR))
    assert ts_packets.video_packets(data) == [Packet(0, True, 2 * 188)]


def read_damaged(good: bytes, seed: int, times: int) -> int:
    """Read ``times`` copies of ``good`` with 1, 5 or 50 random bytes overwritten; none may raise.
    Returns how many were read (not declined)."""
    rng = random.Random(seed)
    read = 0
    for _ in range(times):
        data = bytearray(good)
        for _ in range(rng.choice((1, 5, 50))):
            data[rng.randrange(len(data))] = rng.randrange(256)
        got = ts_packets.video_packets(bytes(data))
        assert got is None or all(isinstance(p, Packet) for p in got)
        read += got is not None
    return read


def test_damaged_bytes_never_raise_they_read_or_decline() -> None:
    good = stream(*(pes(3000 * n, AUD + (IDR if n % 4 == 0 else P)) for n in range(12)))
    read = read_damaged(good, seed=7, times=3000)
    assert 0 < read < 3000  # some damage lands in padding and is read; most is declined


def test_declines_several_programs_and_a_pes_before_the_program_tables() -> None:
    two_programs = ts(0, 0, section(0, b"\x00\x01\xf0\x00\x00\x02\xf0\x01"), start=True)
    tables = two_programs + pmt((0x1B, VIDEO))
    assert ts_packets.video_packets(stream(pes(0, AUD + IDR), tables=tables)) is None
    early = ts(VIDEO, 15, pes(0, AUD + IDR)[:184], start=True)  # the video PES, then PAT and PMT
    assert ts_packets.video_packets(early + stream(pes(3000, AUD + IDR))) is None


def _ue(v: int) -> str:
    """Exp-Golomb ue(v) as a bit string (H.264 9.1)."""
    code = bin(v + 1)[2:]
    return "0" * (len(code) - 1) + code


def _se(v: int) -> str:
    return _ue(2 * v - 1 if v > 0 else -2 * v)


def sps(
    *,
    frame_mbs_only: bool,
    profile: int = 100,
    matrices: bool = False,
    poc_type: int = 0,
    cropped: bool = False,
    vui: bool = False,
    sar: tuple[int, int] | None = None,
    transfer: int | None = None,
) -> bytes:
    """An SPS NAL unit's bytes after its header, written field by field from the standard's syntax
    (7.3.2.1.1; its VUI up to the colour description, E.1.1), with every optional part this reader
    must step over when asked."""
    bits = f"{profile:08b}" + "00000000" + f"{30:08b}" + _ue(0)
    if profile in (100, 110, 122, 244):
        bits += _ue(1) + _ue(0) + _ue(0) + "0"  # 4:2:0, 8-bit luma and chroma, no transform bypass
        bits += "1" if matrices else "0"
        if matrices:  # lists 0, 3 and 6 present: one ended early by a next scale of 0, two whole
            lists = {0: [_se(-8)], 3: [_se(3)] * 16, 6: [_se(1), _se(-1)] * 32}
            bits += "".join("1" + "".join(lists[n]) if n in lists else "0" for n in range(8))
    bits += _ue(0) + _ue(poc_type)
    if poc_type == 0:
        bits += _ue(2)
    elif poc_type == 1:
        bits += "0" + _se(-2) + _se(1) + _ue(3) + _se(4) + _se(-5) + _se(6)
    bits += _ue(4) + "0" + _ue(9) + _ue(5 if frame_mbs_only else 2)
    bits += "1" if frame_mbs_only else "01"  # frame_mbs_only_flag, else it and mb_adaptive_frame_field
    bits += "1"  # direct_8x8_inference_flag
    bits += "1" + _ue(0) + _ue(4) + _ue(0) + _ue(2) if cropped else "0"  # frame_cropping_flag, offsets
    bits += "1" if vui or sar or transfer is not None else "0"  # vui_parameters_present_flag
    if vui or sar or transfer is not None:
        bits += "1" + f"{255:08b}" + f"{sar[0]:016b}{sar[1]:016b}" if sar else "0"  # Extended_SAR
        bits += "11"  # overscan_info_present_flag, overscan_appropriate_flag
        if transfer is not None:  # video_signal_type: format 5, limited range, colour described
            bits += "1" + "101" + "0" + "1" + f"{9:08b}{transfer:08b}{9:08b}"
        else:
            bits += "0"
        bits += "1" + f"{1:032b}{60:032b}" + "1"  # timing_info_present_flag ... fixed_frame_rate_flag
        bits += "0000"  # no HRD parameters, pic_struct_present_flag, bitstream_restriction_flag
    bits += "1"  # rbsp_stop_one_bit
    bits += "0" * (-len(bits) % 8)
    raw = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    return raw.replace(b"\x00\x00", b"\x00\x00\x03")  # emulation prevention, as a muxer writes it


@pytest.mark.parametrize("profile", [66, 100])
@pytest.mark.parametrize("matrices", [False, True])
@pytest.mark.parametrize("poc_type", [0, 1, 2])
def test_an_sps_says_whether_pictures_may_be_interlaced(profile: int, matrices: bool, poc_type: int) -> None:
    for flag in (True, False):
        made = sps(frame_mbs_only=flag, profile=profile, matrices=matrices, poc_type=poc_type)
        assert ts_packets.frame_mbs_only(made) is flag


@pytest.mark.parametrize("sar", [None, (4, 3)])
@pytest.mark.parametrize("cropped", [False, True])
@pytest.mark.parametrize("transfer", [None, 1, 16, 18])
def test_an_sps_names_its_transfer_past_cropping_and_aspect(
    sar: tuple[int, int] | None, cropped: bool, transfer: int | None
) -> None:
    for flag in (True, False):
        made = sps(frame_mbs_only=flag, cropped=cropped, sar=sar, transfer=transfer, vui=True)
        assert ts_packets.sps_facts(made) == ts_packets.SpsFacts(flag, transfer)


def test_an_hdr_stream_is_left_to_ffprobe() -> None:
    # ffprobe names its colour (PQ 16, HLG 18), for the cut to tone-map it; BT.709's (1) is read here
    for transfer, read in ((None, True), (1, True), (16, False), (18, False)):
        unit = b"\x00\x00\x01\x67" + sps(frame_mbs_only=True, transfer=transfer)
        got = ts_packets.video_packets(stream(pes(0, AUD + unit + IDR)))
        assert got == ([Packet(0, True, 2 * 188)] if read else None), transfer


def test_a_stream_whose_sps_allows_interlaced_pictures_is_left_to_ffprobe() -> None:
    # ffprobe says whether its frames are interlaced (field_order), for the cut to deinterlace them
    progressive = b"\x00\x00\x01\x67" + sps(frame_mbs_only=True)
    interlaced = b"\x00\x00\x01\x67" + sps(frame_mbs_only=False)
    assert ts_packets.video_packets(stream(pes(0, AUD + progressive + IDR))) == [Packet(0, True, 2 * 188)]
    assert ts_packets.video_packets(stream(pes(0, AUD + interlaced + IDR))) is None


def test_an_sps_cut_short_is_unsure_never_a_guess() -> None:
    whole = sps(frame_mbs_only=False, matrices=True)
    with pytest.raises(ts_packets.Unsure):
        ts_packets.frame_mbs_only(whole[:20])  # inside the scaling lists
    for end in range(len(whole)):
        try:
            assert ts_packets.frame_mbs_only(whole[:end]) is False, end
        except ts_packets.Unsure:
            continue
