"""``recovery.clean_from``: from which display time a flagged keyframe serves a window (x264's periodic
intra refresh: a recovery point whole only some reference pictures later). The corpus variants
``x264_intra_refresh`` (MPEG-TS) and ``x264_intra_refresh_fmp4`` trace it frame by frame; these pin
the rule's edges on made-up pictures."""

from __future__ import annotations

from pipeline.probe import Packet
from pipeline.recovery import clean_from
from pipeline.ts_packets import Unsure

# Decode order; display order differs (B-frames): pts in frames of 3000 ticks.
PACKETS = [
    Packet(0 * 3000, True, 0),  # the recovery point (a P-frame flagged as key)
    Packet(3 * 3000, False, 100),  # P, reference
    Packet(1 * 3000, False, 200),  # B, not a reference
    Packet(2 * 3000, False, 300),  # B, not a reference
    Packet(6 * 3000, False, 400),  # P, reference: frame_num 2 from the key
    Packet(4 * 3000, False, 500),  # B
]


def pictures(recovery: dict[int, int | None], refs: set[int]) -> object:
    def picture(pos: int) -> tuple[int | None, bool]:
        return recovery.get(pos), pos in refs

    return picture


def test_a_keyframe_without_a_recovery_count_serves_from_its_own_time() -> None:
    picture = pictures({0: None}, {0, 100, 400})
    assert clean_from(picture, PACKETS, 0) == 0  # type: ignore[arg-type]
    picture = pictures({0: 0}, {0, 100, 400})  # recovery_frame_cnt 0: whole at once (open GOP)
    assert clean_from(picture, PACKETS, 0) == 0  # type: ignore[arg-type]


def test_a_recovery_point_serves_from_the_latest_picture_decoded_up_to_the_recovered_one() -> None:
    # recovery_frame_cnt 2: the picture two reference pictures on (decode index 4, pts 6 frames) is
    # whole; the latest display time decoded up to it is its own
    picture = pictures({0: 2}, {0, 100, 400})
    assert clean_from(picture, PACKETS, 0) == 6 * 3000  # type: ignore[arg-type]
    # recovery_frame_cnt 1: the P-frame at decode index 1 (pts 3 frames)
    picture = pictures({0: 1}, {0, 100, 400})
    assert clean_from(picture, PACKETS, 0) == 3 * 3000  # type: ignore[arg-type]


def test_a_recovery_beyond_the_run_or_an_unreadable_picture_after_the_key_means_start_earlier() -> None:
    picture = pictures({0: 5}, {0, 100, 400})  # not reached within the run's packets
    assert clean_from(picture, PACKETS, 0) is None  # type: ignore[arg-type]

    def unreadable_after_key(pos: int) -> tuple[int | None, bool]:
        if pos:
            raise Unsure
        return 2, True

    assert clean_from(unreadable_after_key, PACKETS, 0) is None


def test_a_keyframe_whose_own_bytes_cannot_be_read_is_taken_as_flagged() -> None:
    def unreadable(pos: int) -> tuple[int | None, bool]:
        raise Unsure

    assert clean_from(unreadable, PACKETS, 0) == 0
    no_position = [Packet(0, True, None), *PACKETS[1:]]
    assert clean_from(pictures({0: 2}, {0}), no_position, 0) == 0  # type: ignore[arg-type]
