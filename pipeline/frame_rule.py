"""The frame rule: which source frame each output frame of a slot shows. Pure, exact (Fractions).

Output frame i of a slot (at the job's ``fps``) shows source time
``start + min(i, i_last) / fps``, where ``i_last`` is the last output frame
that falls inside the window (later ones hold it). The frame shown is the one
whose display interval contains that time: the last frame whose timestamp is
at or before it (its interval runs to the next frame's timestamp). Source time
0 is the first video frame; on an HLS source each discontinuity's first
frame sits where the playlist timeline puts it, and the frames after it at
their real timestamps from there. Nothing here uses a container's start time
or a sum of ``#EXTINF`` inside a discontinuity.

``plan`` returns the pick of every output frame (for the report and the
argv) or raises ``NeedSegments`` when the timestamps show that a neighbouring
segment holds frames the window needs (``#EXTINF`` differs from the real
durations).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

#: MPEG-TS timestamps wrap at 2^33 ticks of 90 kHz (about 26.5 hours).
TS_WRAP = 1 << 33


class FramesMissing(ValueError):
    """The timestamps cannot say which frame the window shows: they jump over frames it needs (a
    truncated or damaged segment), or two frames share the timestamp of one it shows."""


class NeedSegments(Exception):
    """The window needs the segment before (``before``) or after the ones fetched for a discontinuity."""

    def __init__(self, discontinuity: int, *, before: bool) -> None:
        super().__init__(f"discontinuity {discontinuity} needs the segment {'before' if before else 'after'}")
        self.discontinuity = discontinuity
        self.before = before


@dataclass(frozen=True)
class Anchor:
    """Where a discontinuity's timestamps meet the playlist timeline: its first frame's pts, at ``time_s``."""

    discontinuity: int
    time_s: Fraction  # playlist time of the discontinuity's first segment
    pts: int  # that segment's first video frame, in ``time_base``
    time_base: Fraction
    wraps: bool  # MPEG-TS: timestamps are modulo 2^33


@dataclass(frozen=True)
class Run:
    """One ffmpeg input: consecutive segments of one discontinuity (and one init section), probed."""

    discontinuity: int
    pts: tuple[int, ...]  # video frames' timestamps in display order, as ffmpeg reads this input
    time_base: Fraction
    more_after: bool  # the playlist has later segments of this discontinuity that were not fetched
    #: per frame in display order, which fetched piece (segment) holds it; empty when unknown (every
    #: hole in the timestamps is then taken as frames gone, ``_timed``)
    pieces: tuple[int, ...] = ()

    @property
    def first_pts(self) -> int:
        return self.pts[0]


@dataclass(frozen=True)
class Pick:
    run: int  # index into the runs
    pts: int  # the source frame shown, in the run's timestamps
    target: Fraction  # the source time asked for, in the run's ticks
    source_frame: int  # its index from the start of the source (rate-based, for reports)


def output_times(start_ms: int, window_ms: int, fps: int, frames: int) -> list[Fraction]:
    """Source time (s) shown by each output frame: start + i/fps, held after the window's last frame."""
    i_last = max(0, min(frames - 1, -(-window_ms * fps // 1000) - 1))
    start = Fraction(start_ms, 1000)
    return [start + Fraction(min(i, i_last), fps) for i in range(frames)]


def _offset(run: Run, anchor: Anchor) -> Fraction:
    """Seconds from the anchor frame to the run's first frame."""
    ticks = run.first_pts - anchor.pts
    if anchor.wraps:
        ticks %= TS_WRAP
    return (
        ticks * run.time_base
        if run.time_base == anchor.time_base
        else (run.first_pts * run.time_base - anchor.pts * anchor.time_base)
    )


def _step(run: Run) -> int:
    """The run's usual frame duration in ticks (the median gap), 0 for a single frame."""
    gaps = sorted(b - a for a, b in zip(run.pts, run.pts[1:], strict=False))
    return gaps[len(gaps) // 2] if gaps else 0


#: How many of a run's last frames (in display order) may be followed by a frame of the next segment:
#: H.264 and HEVC reorder at most 16 frames. A packager that cuts segments in decode order where the
#: time is up (GStreamer's fragmented mp4mux, B-frames) leaves a B-frame shown before the run's last
#: frames in the segment after it.
REORDER_DEPTH = 16


@lru_cache(maxsize=256)
def _longest_inside(run: Run) -> int:
    """The longest gap between two frames of one piece (ticks): how long the source's own timing shows
    a frame (0 without pieces)."""
    gaps = [
        b - a
        for a, b, pa, pb in zip(run.pts, run.pts[1:], run.pieces, run.pieces[1:], strict=False)
        if pa == pb
    ]
    return max(gaps, default=0)


def _timed(run: Run, j: int) -> bool:
    """Whether the hole after the run's frame ``j`` (display order) is the source's own timing (a
    variable frame rate: phones, screen recorders) rather than frames gone (a segment cut short, which
    its bytes and the playlist cannot tell). Inside one piece (segment) it is: its muxer timed it so.
    Where two pieces meet it is when no longer than a gap inside them; a longer one is refused, as every
    hole is in a run whose pieces are unknown."""
    if j + 1 >= len(run.pieces):
        return False
    return run.pieces[j] == run.pieces[j + 1] or run.pts[j + 1] - run.pts[j] <= _longest_inside(run)


def _after_the_run(run: Run, j: int, target: Fraction, step: int) -> bool:
    """Whether the frame shown at ``target`` (pick ``run.pts[j]``) may be in the segment after the run:
    ``target`` is a frame or more past the run's last frame, or it falls in a hole of more than a
    frame among the run's last ``REORDER_DEPTH`` frames (where the next segment's frames can be)."""
    last = len(run.pts) - 1
    if j == last:
        return target >= run.pts[-1] + step
    hole = run.pts[j + 1] - run.pts[j]
    return last - j <= REORDER_DEPTH and 2 * hole > 3 * step and 2 * (target - run.pts[j]) >= step


#: Frame rates a coarse clock's rounding is checked against when the source names none.
COMMON_RATES = tuple(
    Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60")
)


@lru_cache(maxsize=256)
def snapped(run: Run, rate: Fraction | None) -> tuple[Fraction, ...] | None:
    """The run's frame times on their frame-rate grid (in its ticks), when its timestamps are that grid
    rounded to a coarser clock, else None (exact timestamps need nothing; irregular ones are taken as
    they are).

    A source timed in whole milliseconds (Matroska, FLV/RTMP, and HLS packaged from either without
    re-encoding) stores 30 fps frame 32 (1066.67 ms) at 1067 ms: after the output time 1066.67 ms that
    shows it, so the frame before would be held and frame 32 skipped. The grid is recognised when every
    timestamp lies within half the clock's step (the gcd of their distances, or a millisecond) of one
    line of frames ``rate`` apart (the source's, or a common rate near the run's mean), the line placed
    by the rounding errors themselves. Integer arithmetic per frame: it runs for every clip."""
    pts = run.pts
    if len(pts) < 3:
        return None
    deltas = [p - pts[0] for p in pts]
    quantum = 0
    for d in deltas:
        quantum = math.gcd(quantum, d)
    candidates = [rate] if rate else []
    if deltas[-1] > 0:
        mean = (len(pts) - 1) / (deltas[-1] * run.time_base)
        candidates += sorted(COMMON_RATES, key=lambda r: abs(r - mean))[:2]
    # The clock's step, in ticks: the timestamps' own (their gcd), or a millisecond rescaled into a
    # finer time base (an MP4 of 1/15360 made from Matroska: rounded twice, hence the half tick).
    ms = 1 / (1000 * run.time_base)
    widths = [Fraction(quantum, 2)] + ([ms / 2 + Fraction(1, 2)] if ms > quantum else [])
    for r in candidates:
        grid = 1 / (r * run.time_base)  # ticks per frame: gn / gd
        gn, gd = grid.numerator, grid.denominator
        index = [(2 * d * gd + gn) // (2 * gn) for d in deltas]  # the nearest grid line's number
        if any(b <= a for a, b in zip(index, index[1:], strict=False)):
            continue
        errors = [d * gd - n * gn for d, n in zip(deltas, index, strict=True)]  # in ticks / gd
        if not any(errors):
            return None  # on the grid already
        most, least = Fraction(max(errors), gd), Fraction(min(errors), gd)
        for width in widths:
            if 4 * width < grid and most - width <= least + width:
                shift = (most + least) / 2
                return tuple(pts[0] + n * grid + shift for n in index)
    return None


def plan(times: list[Fraction], anchors: list[Anchor], runs: list[Run], rate: Fraction | None) -> list[Pick]:
    """The pick for each time. ``anchors`` sorted by time; ``runs`` in playlist order."""
    by_disc = {a.discontinuity: a for a in anchors}
    starts = [a.time_s for a in anchors]
    picks: list[Pick] = []
    steps: dict[int, int] = {}  # run index -> its usual frame duration
    grids: dict[int, tuple[Fraction, ...] | None] = {}  # run index -> its frames on their rate grid
    for t in times:
        anchor = anchors[max(0, bisect.bisect_right(starts, t) - 1)]
        elapsed = t - anchor.time_s
        mine = [i for i, r in enumerate(runs) if r.discontinuity == anchor.discontinuity]
        if not mine:
            raise NeedSegments(anchor.discontinuity, before=True)
        offsets = [_offset(runs[i], by_disc[anchor.discontinuity]) for i in mine]
        if elapsed < offsets[0]:
            raise NeedSegments(anchor.discontinuity, before=True)
        k = max(j for j, off in enumerate(offsets) if off <= elapsed)
        ri = mine[k]
        run = runs[ri]
        target = run.first_pts + (elapsed - offsets[k]) / run.time_base
        if ri not in grids:
            grids[ri] = snapped(run, rate)
        # (at most a rounding before its grid time, the run's first frame is still the one shown)
        j = max(0, bisect.bisect_right(grids[ri] or run.pts, target) - 1)
        pts = run.pts[j]
        if ri not in steps:
            steps[ri] = _step(run)
        step = steps[ri]
        if k == len(mine) - 1 and run.more_after and _after_the_run(run, j, target, step):
            raise NeedSegments(anchor.discontinuity, before=False)
        if j > 0 and run.pts[j - 1] == pts:
            raise FramesMissing(f"two frames share pts {pts}: which one the window shows is ambiguous")
        hole = step and target - pts >= 2 * step and (j + 1 < len(run.pts) or run.more_after)
        if hole and not _timed(run, j):
            raise FramesMissing(f"no frame between pts {pts} and the next, {target - pts} ticks later")
        frame = 0
        if rate:
            grid = grids[ri]
            shown = grid[j] if grid else pts
            since = (shown - run.first_pts) * run.time_base + offsets[k]
            frame = round(anchor.time_s * rate) + round(since * rate)
        picks.append(Pick(ri, pts, target, frame))
    return picks


@dataclass(frozen=True)
class RunCut:
    """How one run's input becomes output frames [first, first + count): the exact filter values."""

    run: int
    first: int
    count: int
    tick_den: int  # the filter time base is 1/tick_den: fine enough that every output tick is whole
    shift: int  # setpts=PTS-shift: output frame ``first`` lands at 0
    end_pts: int | None  # trim=end_pts: frames at or after it are never shown (the held last frame)


def run_cuts(picks: list[Pick], runs: list[Run], fps: int, times: list[Fraction]) -> list[RunCut]:
    """Group consecutive picks by run and compute the filter values that reproduce them in ffmpeg.

    In a filter time base of 1/(den*fps) (den: the run's time base 1/den), ``fps=round=up``
    shows at output tick n the last frame with pts <= shift + n*den, which is the pick. The shift is
    the first pick's target, moved only as far as the picks need: picked on their rate grid
    (``snapped``), frames of a coarse clock may sit a little after the output tick that shows them; a
    group no one shift reproduces is split in two.
    """
    cuts: list[RunCut] = []
    i = 0
    while i < len(picks):
        run = runs[picks[i].run]
        den = run.time_base.denominator * fps
        scale = Fraction(den) * run.time_base  # run ticks -> filter ticks
        step = run.time_base.denominator  # filter ticks per output frame
        first = int((picks[i].target * scale) // 1)
        low: int | None = None  # the shifts that show every pick of the cut so far: low..high
        high: int | None = None
        j = i
        while j < len(picks) and picks[j].run == picks[i].run:
            if j == i or times[j] != times[j - 1]:  # a held frame is the last one shown, repeated
                at = bisect.bisect_left(run.pts, picks[j].pts)
                lo = int(run.pts[at] * scale) - (j - i) * step
                lo = lo if low is None else max(low, lo)
                hi = high
                if at + 1 < len(run.pts):
                    before_next = int(run.pts[at + 1] * scale) - (j - i) * step - 1
                    hi = before_next if high is None else min(high, before_next)
                if hi is not None and lo > hi:
                    break  # no one shift shows this pick and the ones before it: a new cut
                low, high = lo, hi
            j += 1
        shift = max(first, low) if low is not None else first
        shift = min(shift, high) if high is not None else shift
        held = [n for n in range(i + 1, j) if times[n] == times[n - 1]]
        end_pts = None
        if held:
            last_shown = held[0] - 1
            end_pts = (last_shown - i) * run.time_base.denominator + 1  # after setpts: relative
        cuts.append(RunCut(picks[i].run, i, j - i, den, shift, end_pts))
        i = j
    return cuts
