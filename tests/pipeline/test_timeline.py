"""Timeline rule: slots tile the output, lengths in whole frames, totals exact."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.models import parse_request
from pipeline.timeline import build_slots, frame_at, total_frames


def req(bounds: list[tuple[int, int]], fps: int = 30):  # type: ignore[no-untyped-def]
    lines = [
        {"start_ms": s, "end_ms": e, "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000}}
        for s, e in bounds
    ]
    return parse_request({"job_id": "t", "output": {"width": 320, "height": 180, "fps": fps}, "lines": lines})


def test_frame_at_rounds_half_up_exactly() -> None:
    assert frame_at(0, 30) == 0
    assert frame_at(1000, 30) == 30
    assert frame_at(50, 30) == 2  # 1.5 -> 2 (Python's round would give 2 too)
    assert frame_at(16, 30) == 0  # 0.48
    assert frame_at(17, 30) == 1  # 0.51
    assert frame_at(150, 30) == 5  # 4.5 -> 5, where round() gives 4
    assert frame_at(3850, 30) == 116  # 115.5 -> 116


def test_slots_tile_with_gaps_absorbed() -> None:
    # Given a first line that starts late and a gap between lines 1 and 2
    r = req([(500, 3200), (3200, 7050), (8000, 9000)])
    slots = build_slots(r)
    # Then slot 0 starts at 0, each slot ends where the next line starts, the last at the last end
    assert [(s.start_ms, s.end_ms) for s in slots] == [(0, 3200), (3200, 8000), (8000, 9000)]
    assert [s.frames for s in slots] == [96, 144, 30]
    assert sum(s.frames for s in slots) == total_frames(r) == 270


@settings(max_examples=200, deadline=None)
@given(
    fps=st.sampled_from([24, 25, 30, 50, 60]),
    # A line of at least 1000/24 ms spans a whole frame at every rate here, so it always gets one
    # (a shorter one may round to none and is refused by validation, as it should be).
    gaps=st.lists(st.tuples(st.integers(0, 400), st.integers(42, 5000)), min_size=1, max_size=70),
)
def test_frame_counts_add_up_to_the_total(fps: int, gaps: list[tuple[int, int]]) -> None:
    bounds, t = [], 0
    for gap, length in gaps:
        bounds.append((t + gap, t + gap + length))
        t += gap + length
    r = req(bounds, fps)
    slots = build_slots(r)
    assert sum(s.frames for s in slots) == total_frames(r) == frame_at(bounds[-1][1], fps)
    for a, b in zip(slots, slots[1:], strict=False):
        assert a.end_ms == b.start_ms and a.start_frame + a.frames == b.start_frame
