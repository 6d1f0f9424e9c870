"""report.json: every slot, and missing footage grouped with an action."""

from __future__ import annotations

from pipeline.clip_stats import ClipStats
from pipeline.context import JobView
from pipeline.models import ClipRecord, JobStatus, parse_request
from pipeline.report import build_report
from pipeline.timeline import build_slots


def view(**output: object) -> JobView:
    lines = [
        {
            "text": f"第{i}句",
            "start_ms": i * 1000,
            "end_ms": i * 1000 + 1000,
            "clip": {
                "video_id": "v_gone" if i in (1, 3) else ("v_local" if i == 2 else "v_ok"),
                "start_ms": 5000,
                "end_ms": 6000,
            },
        }
        for i in range(4)
    ]
    out = {"width": 320, "height": 180, "fps": 30, **output}
    req = parse_request({"job_id": "r1", "output": out, "lines": lines})
    return JobView(req, build_slots(req))


def test_report_lists_every_slot_and_groups_missing_footage() -> None:
    v = view()
    records = {
        0: ClipRecord(0, "ok", video_id="v_ok", attempts=1, frames=30, bytes_fetched=123),
        1: ClipRecord(
            1, "placeholder", video_id="v_gone", attempts=1, frames=30, reason="HTTP 404; no local copy"
        ),
        2: ClipRecord(2, "local", video_id="v_local", attempts=4, frames=30, reason="retries exhausted"),
        3: ClipRecord(
            3, "placeholder", video_id="v_gone", attempts=1, frames=30, reason="HTTP 404; no local copy"
        ),
    }
    report = build_report(
        v,
        records,
        status=JobStatus.COMPLETED_WITH_GAPS,
        output_path="/o/r1/final.mp4",
        total_frames=120,
        measured_frames=120,
        clip_stats=ClipStats(total=4),
    )
    r = report.model_dump(mode="json")  # what report.json holds
    assert r["schema_version"] == 1 and r["status"] == "COMPLETED_WITH_GAPS"
    assert [s["outcome"] for s in r["slots"]] == ["ok", "placeholder", "local", "placeholder"]
    first = r["slots"][0]
    assert first["text"] == "第0句" and first["slot_start_ms"] == 0 and first["source_start_ms"] == 5000
    assert first["bytes_fetched"] == 123 and first["measured_ms"] == 1000.0
    assert [(s["line"], s["index"]) for s in r["slots"]] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    missing = r["summary"]["missing_footage"]
    # Line numbers a person reads are 1-based; the 0-based index keeps its own name
    assert [(g["video_id"], g["outcome"], [x["line"] for x in g["lines"]]) for g in missing] == [
        ("v_gone", "placeholder", [2, 4]),
        ("v_local", "local", [3]),
    ]
    assert [x["index"] for x in missing[0]["lines"]] == [1, 3]
    assert "restore v_gone" in missing[0]["action"]
    assert missing[0]["lines"][0]["at"] == "00:01.000-00:02.000"
    assert missing[0]["lines"][0]["source_ms"] == [5000, 6000]
    assert (r["summary"]["ok"], r["summary"]["placeholder"], r["summary"]["local"]) == (1, 2, 1)
    # The advice names the command and the API call that render the lines again
    for group in missing:
        assert "`clipline retry r1`" in group["action"] and "POST /jobs/r1/retry" in group["action"]
    assert r["summary"]["retry"] == {"cli": "clipline retry r1", "http": "POST /jobs/r1/retry"}
    assert r["summary"]["text"][0].startswith("v_gone: 2 line(s) 2, 4 -> placeholder (HTTP 404; no local")


def test_a_report_without_gaps_says_so_and_offers_no_retry() -> None:
    records = {i: ClipRecord(i, "ok", video_id="v", attempts=1, frames=30) for i in range(4)}
    r = build_report(
        view(),
        records,
        status=JobStatus.COMPLETED,
        output_path="/o/r1/final.mp4",
        total_frames=120,
        measured_frames=120,
        clip_stats=ClipStats(total=4),
    )
    assert r.summary.missing_footage == [] and r.summary.retry is None
    assert r.summary.text == ["all lines have their planned footage"]


def test_a_slot_without_a_record_shows_as_failed() -> None:
    r = build_report(
        view(),
        {},
        status=JobStatus.FAILED,
        output_path=None,
        total_frames=120,
        measured_frames=None,
        clip_stats=ClipStats(total=0),
    )
    assert {s.outcome for s in r.slots} == {"failed"}
    assert r.summary.failed == 4
    assert "so the job failed" in r.summary.missing_footage[0].action


def test_a_draft_report_says_draft_with_the_size_written_and_the_same_frames() -> None:
    records = {i: ClipRecord(i, "ok", video_id="v", attempts=1, frames=30) for i in range(4)}
    final, draft = (
        build_report(
            v,
            records,
            status=JobStatus.COMPLETED,
            output_path="/o/r1/final.mp4",
            total_frames=120,
            measured_frames=120,
            clip_stats=ClipStats(total=4),
        )
        for v in (view(), view(quality="draft"))
    )
    assert (final.output.quality, final.output.width, final.output.height) == ("final", 320, 180)
    assert (draft.output.quality, draft.output.width, draft.output.height) == ("draft", 160, 90)
    assert draft.output.expected_frames == final.output.expected_frames == 120
    assert [r.model_dump() for r in draft.slots] == [r.model_dump() for r in final.slots]
