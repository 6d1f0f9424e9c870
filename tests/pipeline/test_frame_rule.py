"""The frame rule, exactly: containing frame, held last frame, anchors, wrap, runs, segment extension."""

from __future__ import annotations

from fractions import Fraction

import pytest

from pipeline.frame_rule import (
    TS_WRAP,
    Anchor,
    FramesMissing,
    NeedSegments,
    Run,
    output_times,
    plan,
    run_cuts,
    snapped,
)

TB = Fraction(1, 90000)


def run_at(
    first_frame: int, count: int, *, base: int, step: int = 3000, disc: int = 0, more: bool = False
) -> Run:
    return Run(
        disc, tuple((base + step * n) % TS_WRAP for n in range(first_frame, first_frame + count)), TB, more
    )


def frames(picks: list) -> list[int]:
    return [p.source_frame for p in picks]


def test_times_hold_the_windows_last_frame() -> None:
    t = output_times(2990, 1020, 30, 33)
    assert t[0] == Fraction(299, 100) and t[30] == Fraction(399, 100) and t[31] == t[32] == t[30]


@pytest.mark.parametrize(
    ("rate", "step", "start_ms", "want"),
    [
        (30, 3000, 1234, [37, 38, 39, 40]),  # 1.234 s lies in frame 37 (1.2333..1.2667)
        (25, 3600, 1010, [25, 26, 26, 27, 28]),  # 25 into 30: frames repeat, the containing one each time
        (Fraction(30000, 1001), 3003, 1000, [29, 30, 31, 32]),
    ],
)
def test_each_output_frame_shows_the_frame_containing_its_time(
    rate: Fraction, step: int, start_ms: int, want: list[int]
) -> None:
    anchor = Anchor(0, Fraction(0), 132000, TB, True)
    picks = plan(
        output_times(start_ms, 1000, 30, len(want)),
        [anchor],
        [run_at(0, 90, base=132000, step=step)],
        Fraction(rate),
    )
    assert frames(picks) == want


def test_a_time_on_a_frame_boundary_shows_the_frame_starting_there() -> None:
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    picks = plan([Fraction(1)], [anchor], [run_at(0, 60, base=0)], Fraction(30))
    assert frames(picks) == [30]


def test_timestamps_wrapping_past_2_to_the_33_do_not_move_the_cut() -> None:
    base = TS_WRAP - 3 * 90000  # 3 s before the wrap
    anchor = Anchor(0, Fraction(0), base, TB, True)
    later = run_at(120, 30, base=base)  # frames 120.. : their raw pts wrapped to small values
    assert later.first_pts < base
    picks = plan([Fraction(4), Fraction(41, 10)], [anchor], [later], Fraction(30))
    assert frames(picks) == [120, 123]


def test_a_discontinuity_is_placed_by_the_playlist_and_cut_by_its_own_timestamps() -> None:
    a0 = Anchor(0, Fraction(0), 132000, TB, True)
    a1 = Anchor(1, Fraction(3), 500, TB, True)  # timestamps restart
    runs = [run_at(60, 30, base=132000), run_at(0, 30, base=500, disc=1)]
    picks = plan([Fraction(29, 10), Fraction(3), Fraction(31, 10)], [a0, a1], runs, Fraction(30))
    assert [p.run for p in picks] == [0, 1, 1]
    assert frames(picks) == [87, 90, 93]


def test_frames_before_the_fetched_segments_or_after_them_ask_for_the_neighbour() -> None:
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    with pytest.raises(NeedSegments) as before:
        plan([Fraction(1)], [anchor], [run_at(31, 30, base=0)], Fraction(30))
    assert before.value.before
    with pytest.raises(NeedSegments) as after:
        plan([Fraction(2)], [anchor], [run_at(30, 30, base=0, more=True)], Fraction(30))
    assert not after.value.before
    # the source's end: the last frame is held
    assert frames(plan([Fraction(5)], [anchor], [run_at(30, 30, base=0)], Fraction(30))) == [59]


def test_a_b_frame_left_in_the_next_segment_asks_for_it() -> None:
    # Given segments cut in decode order where the time was up (B-frames): the run of frames 0-29
    # lacks frame 28, which is decoded after frame 29 and so went to the next segment
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    pts = tuple(3000 * n for n in range(30) if n != 28)
    holed = Run(0, pts, TB, True)
    # When the window shows frame 28's time, the next segment is asked for
    with pytest.raises(NeedSegments) as after:
        plan([Fraction(28, 30)], [anchor], [holed], Fraction(30))
    assert not after.value.before
    # but frame 27's time, just before the hole, is frame 27's, and the run is enough
    assert frames(plan([Fraction(27, 30)], [anchor], [holed], Fraction(30))) == [27]
    # At the source's end nothing follows: the frame before the hole is held over it
    assert frames(plan([Fraction(28, 30)], [anchor], [Run(0, pts, TB, False)], Fraction(30))) == [27]


def test_a_hole_far_from_the_runs_end_is_the_sources_own() -> None:
    # Given a run whose frame 5 is missing, 24 frames before its end (not where a B-frame of the next
    # segment can be): the frame before the hole is shown, no segment is asked for
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    run = Run(0, tuple(3000 * n for n in range(30) if n != 5), TB, True)
    assert frames(plan([Fraction(5, 30)], [anchor], [run], Fraction(30))) == [4]


def test_run_cuts_give_ffmpeg_whole_ticks_and_a_relative_hold() -> None:
    anchor = Anchor(0, Fraction(0), 132000, TB, True)
    run = run_at(60, 90, base=132000)
    times = output_times(2990, 1020, 30, 33)
    (cut,) = run_cuts(plan(times, [anchor], [run], Fraction(30)), [run], 30, times)
    assert (cut.tick_den, cut.shift, cut.count) == (2700000, (132000 + 269100) * 30, 33)
    assert cut.end_pts == 30 * 90000 + 1  # after setpts: frame 30's tick is kept, later frames are not


def test_two_frames_with_the_timestamp_of_the_one_shown_are_refused_not_guessed() -> None:
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    pts = sorted([3000 * n for n in range(30)] + [3000 * 12])  # frame 12's timestamp twice
    run = Run(0, tuple(pts), TB, False)
    with pytest.raises(FramesMissing, match="two frames share pts 36000"):
        plan([Fraction(12, 30)], [anchor], [run], Fraction(30))
    # frames whose own timestamps are unique are still cut
    assert frames(plan([Fraction(11, 30), Fraction(13, 30)], [anchor], [run], Fraction(30))) == [11, 13]


def _ms_run(rate: Fraction, count: int, *, tb: Fraction, first: int = 0) -> Run:
    """Frames ``first..`` of a ``rate`` source timed in whole milliseconds (Matroska, FLV), in ``tb``."""
    ms = [round(Fraction(n * 1000) / rate) for n in range(first, first + count)]
    return Run(0, tuple(round(m / (1000 * tb)) for m in ms), tb, False)


def _ffmpeg_shows(cuts: list, runs: list[Run], fps: int, n_frames: int) -> list[int]:
    """What ``fps=round=up`` shows for each output frame of the cuts, from the stored timestamps (frame
    indexes into the run): output tick n of a cut shows the last frame with pts*scale <= shift + n*step."""
    shown = []
    for cut in cuts:
        run = runs[cut.run]
        scale = cut.tick_den * run.time_base
        step = run.time_base.denominator
        for n in range(cut.count):
            at = cut.shift + n * step
            shown.append(max(k for k, p in enumerate(run.pts) if p * scale <= at))
    return shown[:n_frames]


@pytest.mark.parametrize("tb", [Fraction(1, 1000), Fraction(1, 90000), Fraction(1, 15360)])
@pytest.mark.parametrize("rate", [Fraction(30), Fraction(60), Fraction(30000, 1001), Fraction(24)])
def test_millisecond_timestamps_are_picked_on_their_frame_grid_and_ffmpeg_shows_the_same(
    rate: Fraction, tb: Fraction
) -> None:
    # Given a source timed in whole milliseconds (30 fps frame 32 at 1067 ms, not 1066.67), in any
    # time base it was carried into (Matroska's, MPEG-TS's, an MP4's)
    run = _ms_run(rate, int(rate * 4), tb=tb)
    anchor = Anchor(0, Fraction(0), run.first_pts, tb, False)
    times = output_times(1000, 2000, 30, 60)
    # When a window is cut at 30 fps
    picks = plan(times, [anchor], [run], rate)
    # Then each output frame shows the frame whose grid interval holds its time (floor(t * rate)),
    # and ffmpeg, reading the stored timestamps, shows the same frames with the cuts' shifts
    want = [int(t * rate) for t in times]
    assert frames(picks) == want
    cuts = run_cuts(picks, [run], 30, times)
    assert _ffmpeg_shows(cuts, [run], 30, len(times)) == want


def test_exact_or_irregular_timestamps_are_taken_as_they_are() -> None:
    exact = run_at(0, 90, base=0)
    irregular = Run(0, (0, 3000, 6100, 8900, 12000, 15050), TB, False)
    assert snapped(exact, Fraction(30)) is None and snapped(irregular, Fraction(30)) is None


def _vfr_run(pieces: tuple[int, ...] | None) -> Run:
    """30 fps frames 0-9 and 14-29 (frame 9 shown 5 frames long), in two pieces of 15 frames' time."""
    pts = tuple(3000 * n for n in [*range(10), *range(14, 30)])
    return Run(0, pts, TB, False, pieces if pieces is not None else ())


def test_a_long_frame_inside_a_segment_is_the_sources_timing_and_shown_until_the_next() -> None:
    # Given a variable frame rate: frame 9 lasts until frame 14, all in the first segment
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    run = _vfr_run((0,) * 20 + (1,) * 6)
    # Then the times in it show frame 9, the ones after show 14 on
    times = [Fraction(n, 30) for n in (8, 9, 11, 13, 14, 15)]
    assert [p.pts // 3000 for p in plan(times, [anchor], [run], Fraction(30))] == [8, 9, 9, 9, 14, 15]


def test_a_hole_where_segments_meet_longer_than_any_inside_them_is_frames_gone() -> None:
    # Given the same hole where the first segment (frames 0-9) meets the second, and no frame inside a
    # segment lasting more than one frame: the first segment was cut short
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    run = _vfr_run((0,) * 10 + (1,) * 16)
    with pytest.raises(FramesMissing, match="no frame between pts 27000"):
        plan([Fraction(11, 30)], [anchor], [run], Fraction(30))
    # and so is any hole of a run whose segments are unknown
    with pytest.raises(FramesMissing, match="no frame between pts 27000"):
        plan([Fraction(11, 30)], [anchor], [_vfr_run(None)], Fraction(30))


def test_a_hole_where_segments_meet_no_longer_than_one_inside_them_is_timing() -> None:
    # Given frames lasting up to 5 frames inside the second segment (frames 14-19, then 24 on)
    anchor = Anchor(0, Fraction(0), 0, TB, True)
    pts = tuple(3000 * n for n in [*range(10), *range(14, 20), *range(24, 30)])
    run = Run(0, pts, TB, False, (0,) * 10 + (1,) * 12)
    # Then the 5-frame hole where the segments meet is that timing too
    assert [p.pts // 3000 for p in plan([Fraction(12, 30)], [anchor], [run], Fraction(30))] == [9]
