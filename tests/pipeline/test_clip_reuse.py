"""Twin slots (same video and source window) in process: the rule, one cut for a group, racing workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from pipeline import clip_reuse, clipstage, cutting, files, planning, report
from pipeline.context import Context, JobView
from pipeline.models import ClipOutcome, ClipRecord
from tests.stubs import stub_context


@pytest.mark.parametrize(
    ("have", "want", "window", "how"),
    [
        (45, 45, 30, "copy"),
        (45, 21, 30, "trim"),  # the first 21 frames of the longer clip are the shorter slot's frames
        (45, 60, 30, "hold"),  # the window ended at frame 30: frames 45..59 hold the last frame
        (30, 60, 30, "hold"),
        (25, 60, 30, None),  # the longer slot shows frames 25..29 of the window: it needs its own cut
    ],
)
def test_derivation_follows_the_frame_rule(have: int, want: int, window: int, how: str | None) -> None:
    assert clip_reuse.derivation(have, want, window) == how


def job(ctx: Context, windows: list[tuple[int, int]], job_id: str = "tw1") -> str:
    lines: list[dict[str, Any]] = []
    for i, (start, end) in enumerate(windows):
        clip = {"video_id": "v0", "start_ms": start, "end_ms": end, "hls_url": "http://cdn.test/x.m3u8"}
        lines.append({"text": f"l{i}", "start_ms": 1000 * i, "end_ms": 1000 * (i + 1), "clip": clip})
    request = {"job_id": job_id, "output": {"width": 320, "height": 180, "fps": 30}, "lines": lines}
    assert planning.plan(ctx, request).fan_out
    return job_id


class CountingCut:
    """Stands in for cutting.cut_from_hls: writes a clip file, counts the cuts, can be slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def __call__(self, ctx: Context, view: JobView, index: int) -> ClipRecord:
        with self._lock:
            self.calls.append(index)
        time.sleep(self.delay_s)
        path = files.clip_path(ctx.settings, view.job_id, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"clip")
        slot = view.slots[index]
        return ClipRecord(index, ClipOutcome.OK, str(path), "v0", frames=slot.frames, source_first_frame=7)


def test_twin_slots_are_cut_once_and_the_report_says_which_reused_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut = CountingCut()
    monkeypatch.setattr(cutting, "cut_from_hls", cut)
    ctx = stub_context(tmp_path)
    # Given slots 0 and 2 with one source window, slot 1 with another
    job_id = job(ctx, [(0, 900), (2000, 2900), (0, 900)])
    for i in range(3):
        assert isinstance(clipstage.run_clip(ctx, job_id, i, attempt=1, max_attempts=3), clipstage.Done)
    # Then two cuts; slot 2 is slot 0's clip, recorded as reused from it
    assert cut.calls == [0, 1]
    view = ctx.view(job_id)
    records = {i: ClipRecord.from_json(o) for i, o in ctx.completion.outcomes(job_id).items()}
    rows = report.slot_rows(view, records)
    assert [(r.reused_from, r.reuse) for r in rows] == [(None, None), (None, None), (0, "copy")]
    assert rows[2].source_first_frame == 7
    assert files.clip_path(ctx.settings, job_id, 2).read_bytes() == b"clip"


def test_two_workers_reaching_twin_slots_at_once_cut_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two workers (one Redis, one database) and a slow cut
    cut = CountingCut(delay_s=0.5)
    monkeypatch.setattr(cutting, "cut_from_hls", cut)
    server = fakeredis.FakeServer()
    a, b = stub_context(tmp_path, server=server), stub_context(tmp_path, server=server)
    job_id = job(a, [(0, 900), (0, 900)])
    steps: dict[int, clipstage.Step] = {}

    def work(ctx: Context, index: int) -> None:
        steps[index] = clipstage.run_clip(ctx, job_id, index, attempt=1, max_attempts=3)

    # When each takes one twin at the same moment
    threads = [threading.Thread(target=work, args=(a, 0)), threading.Thread(target=work, args=(b, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Then one cut, the other waited for it and reused the clip; both outcomes recorded
    assert len(cut.calls) == 1
    assert all(isinstance(s, clipstage.Done) for s in steps.values())
    outcomes = a.completion.outcomes(job_id)
    reused = [o["reused_from"] for o in outcomes.values()]
    assert sorted(reused, key=lambda x: x is None) == [cut.calls[0], None]
