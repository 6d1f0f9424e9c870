"""Outside audit, fixed since: report.json gave a group of missing lines one reason, its first line's."""

from __future__ import annotations

from pipeline.clip_stats import clip_stats
from pipeline.models import ClipOutcome, ClipRecord, JobStatus
from pipeline.report import build_report
from pipeline.timeline import total_frames

from .helpers import request_for, view_of


def test_each_missing_line_is_given_its_own_reason() -> None:
    """Lines of one video that got placeholders for different reasons (a 404 segment; a window past the
    source's end) are grouped under the first line's reason alone, so summary.missing_footage and
    summary.text tell the operator the wrong cause (and the wrong fix) for the other lines."""
    view = view_of(request_for("reasons", "v_x", [(0, 1000, 1000), (2000, 3000, 1000), (90000, 91000, 1000)]))
    why = {
        0: "SourceNotFound: 404 for http://cdn/v_x/seg_00000.ts",
        2: "SourceInvalid: window 90000-91000 ms lies outside the source (20.000 s long)",
    }
    records = {
        i: ClipRecord(
            index=i,
            outcome=ClipOutcome.PLACEHOLDER if i in why else ClipOutcome.OK,
            path=f"/clips/{i}.mp4",
            video_id="v_x",
            frames=view.slots[i].frames,
            reason=(f"{why[i]}; no local copy of v_x in /media" if i in why else None),
        )
        for i in range(3)
    }
    report = build_report(
        view,
        records,
        status=JobStatus.COMPLETED_WITH_GAPS,
        output_path="/out/final.mp4",
        total_frames=total_frames(view.request),
        measured_frames=total_frames(view.request),
        clip_stats=clip_stats(records.values(), peak_concurrency=1, configured_concurrency=1),
    ).model_dump(mode="json")
    shown: dict[int, str] = {}
    for group in report["summary"]["missing_footage"]:
        for line in group["lines"]:
            shown[line["index"]] = line.get("reason") or group["reason"]
    assert sorted(shown) == [0, 2]
    for index, cause in why.items():
        assert cause in shown[index], (index, shown[index])
