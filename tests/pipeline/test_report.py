"""report.json: every slot, and missing footage grouped with an action."""

from __future__ import annotations

from pipeline.context import JobView
from pipeline.models import ClipRecord, parse_request
from pipeline.report import build_report
from pipeline.timeline import build_slots


def view() -> JobView:
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
    req = parse_request({"job_id": "r1", "output": {"width": 320, "height": 180, "fps": 30}, "lines": lines})
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
    r = build_report(
        v,
        records,
        status="COMPLETED_WITH_GAPS",
        output_path="/o/r1/final.mp4",
        total_frames=120,
        measured_frames=120,
        clip_stats={},
    )
    assert [s["outcome"] for s in r["slots"]] == ["ok", "placeholder", "local", "placeholder"]
    first = r["slots"][0]
    assert first["text"] == "第0句" and first["slot_start_ms"] == 0 and first["source_start_ms"] == 5000
    assert first["bytes_fetched"] == 123 and first["measured_ms"] == 1000.0
    missing = r["summary"]["missing_footage"]
    assert [(g["video_id"], g["outcome"], [x["index"] for x in g["lines"]]) for g in missing] == [
        ("v_gone", "placeholder", [1, 3]),
        ("v_local", "local", [2]),
    ]
    assert "restore v_gone" in missing[0]["action"]
    assert missing[0]["lines"][0]["at"] == "00:01.000-00:02.000"
    assert (r["summary"]["ok"], r["summary"]["placeholder"], r["summary"]["local"]) == (1, 2, 1)


def test_a_slot_without_a_record_shows_as_failed() -> None:
    r = build_report(
        view(), {}, status="FAILED", output_path=None, total_frames=120, measured_frames=None, clip_stats={}
    )
    assert {s["outcome"] for s in r["slots"]} == {"failed"}
    assert r["summary"]["failed"] == 4
