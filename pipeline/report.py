"""report.json: every slot, and a summary of missing footage an operator can act on. Pure."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .context import JobView
from .models import ClipOutcome, ClipRecord


def _clock(ms: int) -> str:
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    return f"{m:02d}:{s:02d}.{ms:03d}"


def slot_rows(view: JobView, records: dict[int, ClipRecord]) -> list[dict[str, Any]]:
    rows = []
    for slot in view.slots:
        line = view.request.lines[slot.index]
        rec = records.get(slot.index) or ClipRecord(
            index=slot.index, outcome=ClipOutcome.FAILED, reason="no outcome recorded"
        )
        rows.append(
            {
                "index": slot.index,
                "text": line.text,
                "slot_start_ms": slot.start_ms,
                "slot_end_ms": slot.end_ms,
                "slot_frames": slot.frames,
                "video_id": line.clip.video_id,
                "source_start_ms": line.clip.start_ms,
                "source_end_ms": line.clip.end_ms,
                "outcome": rec.outcome,
                "attempts": rec.attempts,
                "last_error": rec.last_error,
                "reason": rec.reason,
                "bytes_fetched": rec.bytes_fetched,
                "extract_ms": rec.extract_ms,
                "queue_wait_ms": rec.queue_wait_ms,
                "measured_frames": rec.frames,
                "measured_ms": round(rec.frames * 1000 / slot.fps, 3),
                "drift_ms": rec.drift_ms,
                # the source frames the slot shows (frame rule, from the timestamps used)
                "source_first_frame": rec.source_first_frame,
                "source_last_frame": rec.source_last_frame,
                "cpu_ms": rec.cpu_ms,
            }
        )
    return rows


def missing_footage(view: JobView, records: dict[int, ClipRecord]) -> list[dict[str, Any]]:
    """Slots without their planned footage, grouped by video, each with what to do about it."""
    groups: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
    for row in slot_rows(view, records):
        if row["outcome"] == ClipOutcome.OK:
            continue
        key = (row["video_id"], row["outcome"])
        g = groups.setdefault(
            key,
            {
                "video_id": row["video_id"],
                "outcome": row["outcome"],
                "lines": [],
                "reason": row["reason"] or row["last_error"],
            },
        )
        g["lines"].append(
            {
                "index": row["index"],
                "text": row["text"],
                "at": f"{_clock(row['slot_start_ms'])}-{_clock(row['slot_end_ms'])}",
                "source_ms": [row["source_start_ms"], row["source_end_ms"]],
            }
        )
    out = []
    for g in groups.values():
        vid, outcome = g["video_id"], g["outcome"]
        if outcome == ClipOutcome.LOCAL:
            g["action"] = (
                f"footage came from the local copy of {vid}; check the CDN source if the look differs"
            )
        elif outcome == ClipOutcome.PLACEHOLDER:
            g["action"] = (
                f"black placeholder shown: restore {vid} on the CDN or put {vid}.mp4 in the media "
                f"directory, or pick another clip for these lines, then re-render"
            )
        else:
            g["action"] = "no clip could be produced (not even a placeholder): fix the error and re-render"
        out.append(g)
    return out


def build_report(
    view: JobView,
    records: dict[int, ClipRecord],
    *,
    status: str,
    output_path: str | None,
    total_frames: int,
    measured_frames: int | None,
    clip_stats: dict[str, Any],
    error: str | None = None,
) -> dict[str, Any]:
    req = view.request
    rows = slot_rows(view, records)
    missing = missing_footage(view, records)
    counts = {o.value: sum(1 for r in rows if r["outcome"] == o.value) for o in ClipOutcome}
    lines = [
        f"{g['video_id']}: {len(g['lines'])} line(s) "
        f"[{', '.join(str(x['index']) for x in g['lines'])}] -> {g['outcome']} ({g['reason']}). {g['action']}"
        for g in missing
    ]
    return {
        "job_id": req.job_id,
        "mix_request_id": req.mix_request_id,
        "trace_id": req.trace_id,
        "status": status,
        "error": error,
        "output": {
            "path": output_path,
            "width": req.output.width,
            "height": req.output.height,
            "fps": req.output.fps,
            "expected_frames": total_frames,
            "measured_frames": measured_frames,
            "duration_ms": req.lines[-1].end_ms,
        },
        "summary": {
            "slots": len(rows),
            "ok": counts[ClipOutcome.OK],
            "local": counts[ClipOutcome.LOCAL],
            "placeholder": counts[ClipOutcome.PLACEHOLDER],
            "failed": counts[ClipOutcome.FAILED],
            "missing_footage": missing,
            "text": lines or ["all lines have their planned footage"],
        },
        "clip_stats": clip_stats,
        "slots": rows,
    }
