"""report.json: every slot, and a summary of missing footage an operator can act on. Pure.

Lines are numbered from 1 where a person reads them (``line``, the text
summary); ``index`` is the 0-based slot index the system uses. The advice
names the command and the API call that render the missing lines again.
The published JSON Schema (``docs/schemas/``) is generated from ``Report``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from pydantic import BaseModel, Field

from .clip_stats import ClipStats
from .context import JobView
from .models import SCHEMA_VERSION, CacheResult, ClipOutcome, ClipRecord, JobStatus, Quality, Reuse


class SlotRow(BaseModel):
    """One slot of the output timeline and how it got its clip."""

    line: int = Field(ge=1, description="the lyric line's number, from 1")
    index: int = Field(ge=0, description="the slot's 0-based index")
    text: str
    slot_start_ms: int
    slot_end_ms: int
    slot_frames: int
    video_id: str
    source_start_ms: int
    source_end_ms: int
    outcome: ClipOutcome
    attempts: int
    last_error: str | None
    reason: str | None
    bytes_fetched: int
    extract_ms: float | None
    queue_wait_ms: float | None
    measured_frames: int
    measured_ms: float
    drift_ms: float
    source_first_frame: int | None = Field(description="the first source frame the slot shows (frame rule)")
    source_last_frame: int | None = Field(description="the last source frame the slot shows")
    cpu_ms: float | None = Field(description="CPU of this clip's ffmpeg/ffprobe children")
    reused_from: int | None = Field(
        None, description="the slot (0-based) of the same video and source window whose clip this one reuses"
    )
    reuse: Reuse | None = Field(
        None, description="how a reused clip was made: the same file, its first frames, its last frame held"
    )
    cache: CacheResult | None = Field(
        None, description="the cross-job clip cache (CLIPLINE_CLIP_CACHE_BYTES): hit, miss; null when off"
    )


class MissingLine(BaseModel):
    line: int = Field(ge=1, description="the lyric line's number, from 1")
    index: int = Field(ge=0, description="the slot's 0-based index")
    text: str
    at: str = Field(description="where it plays in the video, mm:ss.mmm-mm:ss.mmm")
    source_ms: tuple[int, int] = Field(description="the planned source window [start_ms, end_ms]")
    reason: str | None = Field(
        None, description="why this line has no footage (the group's reason is its first line's)"
    )


class MissingFootage(BaseModel):
    """Lines of one video that did not get their planned footage, with what to do."""

    video_id: str
    outcome: ClipOutcome
    lines: list[MissingLine]
    reason: str | None
    action: str


class RetryAdvice(BaseModel):
    """How to render the lines without their footage again, once the cause is fixed."""

    cli: str = Field(description="clipline retry JOB_ID")
    http: str = Field(description="POST /jobs/JOB_ID/retry")


class ReportSummary(BaseModel):
    slots: int
    ok: int
    local: int
    placeholder: int
    failed: int
    missing_footage: list[MissingFootage]
    retry: RetryAdvice | None = Field(description="present when some lines lack their footage")
    text: list[str]


class ReportOutput(BaseModel):
    path: str | None
    quality: Quality = Field(
        default="final",
        description='"draft": rendered for alignment review at a quarter of the pixels; not for release',
    )
    width: int = Field(description="of the video written: half the requested width for a draft")
    height: int = Field(description="of the video written: half the requested height for a draft")
    fps: int
    expected_frames: int
    measured_frames: int | None
    duration_ms: int


class Report(BaseModel):
    """``{output_dir}/{job_id}/report.json``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    mix_request_id: str | None
    trace_id: str
    status: JobStatus
    error: str | None
    output: ReportOutput
    summary: ReportSummary
    clip_stats: ClipStats
    slots: list[SlotRow]


def _clock(ms: int) -> str:
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    return f"{m:02d}:{s:02d}.{ms:03d}"


def slot_rows(view: JobView, records: dict[int, ClipRecord]) -> list[SlotRow]:
    rows = []
    for slot in view.slots:
        line = view.request.lines[slot.index]
        rec = records.get(slot.index) or ClipRecord(
            index=slot.index, outcome=ClipOutcome.FAILED, reason="no outcome recorded"
        )
        rows.append(
            SlotRow(
                line=slot.index + 1,
                index=slot.index,
                text=line.text,
                slot_start_ms=slot.start_ms,
                slot_end_ms=slot.end_ms,
                slot_frames=slot.frames,
                video_id=line.clip.video_id,
                source_start_ms=line.clip.start_ms,
                source_end_ms=line.clip.end_ms,
                outcome=rec.outcome,
                attempts=rec.attempts,
                last_error=rec.last_error,
                reason=rec.reason,
                bytes_fetched=rec.bytes_fetched,
                extract_ms=rec.extract_ms,
                queue_wait_ms=rec.queue_wait_ms,
                measured_frames=rec.frames,
                measured_ms=round(rec.frames * 1000 / slot.fps, 3),
                drift_ms=rec.drift_ms,
                source_first_frame=rec.source_first_frame,
                source_last_frame=rec.source_last_frame,
                cpu_ms=rec.cpu_ms,
                reused_from=rec.reused_from,
                reuse=rec.reuse,
                cache=rec.cache,
            )
        )
    return rows


def retry_advice(job_id: str) -> RetryAdvice:
    return RetryAdvice(cli=f"clipline retry {job_id}", http=f"POST /jobs/{job_id}/retry")


def _action(outcome: ClipOutcome, video_id: str, retry: RetryAdvice) -> str:
    again = f"`{retry.cli}` (or {retry.http})"
    if outcome == ClipOutcome.LOCAL:
        return (
            f"footage came from the local copy of {video_id}; once the CDN source is back, {again} "
            f"cuts these lines from it"
        )
    if outcome == ClipOutcome.PLACEHOLDER:
        return (
            f"black placeholder shown: restore {video_id} on the CDN or put {video_id}.mp4 in the media "
            f"directory, then {again} renders these lines again; to pick another clip instead, submit a "
            f"corrected request under a new job_id"
        )
    return f"no clip could be produced (not even a placeholder), so the job failed: fix it, then {again}"


def missing_footage(view: JobView, records: dict[int, ClipRecord]) -> list[MissingFootage]:
    """Slots without their planned footage, grouped by video and outcome, each with what to do about it;
    every line carries its own reason (lines of one group may have failed for different ones)."""
    retry = retry_advice(view.job_id)
    groups: OrderedDict[tuple[str, ClipOutcome], MissingFootage] = OrderedDict()
    for row in slot_rows(view, records):
        if row.outcome == ClipOutcome.OK:
            continue
        group = groups.setdefault(
            (row.video_id, row.outcome),
            MissingFootage(
                video_id=row.video_id,
                outcome=row.outcome,
                lines=[],
                reason=row.reason or row.last_error,
                action=_action(row.outcome, row.video_id, retry),
            ),
        )
        group.lines.append(
            MissingLine(
                line=row.line,
                index=row.index,
                text=row.text,
                at=f"{_clock(row.slot_start_ms)}-{_clock(row.slot_end_ms)}",
                source_ms=(row.source_start_ms, row.source_end_ms),
                reason=row.reason or row.last_error,
            )
        )
    return list(groups.values())


def _reasons(group: MissingFootage) -> str:
    """The group's reason, or each line's where they differ: ``line 1: ...; lines 3, 4: ...``."""
    by_reason: OrderedDict[str | None, list[int]] = OrderedDict()
    for x in group.lines:
        by_reason.setdefault(x.reason, []).append(x.line)
    if len(by_reason) <= 1:
        return str(group.reason)
    return "; ".join(
        f"line{'s' if len(ns) > 1 else ''} {', '.join(map(str, ns))}: {r}" for r, ns in by_reason.items()
    )


def build_report(
    view: JobView,
    records: dict[int, ClipRecord],
    *,
    status: JobStatus,
    output_path: str | None,
    total_frames: int,
    measured_frames: int | None,
    clip_stats: ClipStats,
    error: str | None = None,
) -> Report:
    req = view.request
    rows = slot_rows(view, records)
    missing = missing_footage(view, records)
    counts = {o: sum(1 for r in rows if r.outcome == o) for o in ClipOutcome}
    text = [
        f"{g.video_id}: {len(g.lines)} line(s) {', '.join(str(x.line) for x in g.lines)} "
        f"-> {g.outcome.value} ({_reasons(g)}). {g.action}"
        for g in missing
    ]
    return Report(
        job_id=req.job_id,
        mix_request_id=req.mix_request_id,
        trace_id=req.trace_id,
        status=status,
        error=error,
        output=ReportOutput(
            path=output_path,
            quality=req.output.quality,
            width=req.output.frame_size[0],
            height=req.output.frame_size[1],
            fps=req.output.fps,
            expected_frames=total_frames,
            measured_frames=measured_frames,
            duration_ms=req.lines[-1].end_ms,
        ),
        summary=ReportSummary(
            slots=len(rows),
            ok=counts[ClipOutcome.OK],
            local=counts[ClipOutcome.LOCAL],
            placeholder=counts[ClipOutcome.PLACEHOLDER],
            failed=counts[ClipOutcome.FAILED],
            missing_footage=missing,
            retry=retry_advice(req.job_id) if missing else None,
            text=text or ["all lines have their planned footage"],
        ),
        clip_stats=clip_stats,
        slots=rows,
    )
