"""What the job page shows, read from the job record, Redis (while it runs) and report.json (after).

Slot outcomes: while the job runs, each slot's final outcome comes from the completion hash in
Redis; a slot with an attempt started but no outcome yet is ``running``, one with neither is
``pending``. Once the job has a report, the report's rows are the truth. The missing-footage list
carries the report's own advice (``pipeline.report.missing_footage``, the same function that
writes the report, applied to the outcomes known so far while the job runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from pipeline import keys, report, results
from pipeline.context import Context, JobView
from pipeline.models import ClipRecord, JobStatus
from pipeline.storage import StorageError, layout
from pipeline.store import INVALID_PREFIX, JobAttempt, RenderJob

#: Every state a slot can show, in legend order: the four final outcomes, then the two live ones.
STATES = ("ok", "local", "placeholder", "failed", "running", "pending")
#: A text symbol per state, so colour is never the only signal.
ICONS = {"ok": "✓", "local": "L", "placeholder": "▨", "failed": "✕", "running": "▶", "pending": "…"}


@dataclass(frozen=True)
class SlotView:
    index: int
    text: str
    start_ms: int
    end_ms: int
    video_id: str
    source_start_ms: int
    source_end_ms: int
    state: str
    reason: str | None
    attempts: int
    left_pct: float
    width_pct: float

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass(frozen=True)
class MissingLine:
    index: int
    text: str
    at: str
    video_id: str
    outcome: str
    reason: str | None
    action: str

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass
class JobPage:
    job: RenderJob
    status: JobStatus
    error: str | None
    slots: list[SlotView]
    missing: list[MissingLine]
    history: list[JobAttempt]
    report_url: str | None = None
    video_url: str | None = None
    poster_url: str | None = None
    refused: bool = False  # recorded from a request that never validated: no slots, never retried

    @property
    def counts(self) -> dict[str, int]:
        """Slots per state, every state present."""
        return {state: sum(1 for v in self.slots if v.state == state) for state in STATES}

    @property
    def can_cancel(self) -> bool:
        return not self.status.is_final

    @property
    def can_retry(self) -> bool:
        return self.status.is_final and self.status != JobStatus.COMPLETED and not self.refused


def clock(ms: int) -> str:
    s, ms = divmod(int(ms), 1000)
    m, s = divmod(s, 60)
    return f"{m:02d}:{s:02d}.{ms:03d}"


def read_report(ctx: Context, job: RenderJob) -> dict[str, Any] | None:
    """The job's report.json (from the store: files or S3) when it has one that parses; None otherwise."""
    try:
        return results.read_report(ctx, job)
    except StorageError:
        return None


def _records(ctx: Context, job_id: str, rep: dict[str, Any] | None) -> dict[int, ClipRecord]:
    """Slot index -> its final outcome: the report's rows, or Redis's while the job runs. A row that
    does not read as a ClipRecord (an outcome this version does not know) is left out: shown pending."""
    if rep is not None:
        rows = {int(r["index"]): r for r in rep.get("slots") or [] if isinstance(r, dict) and "index" in r}
    else:
        rows = {i: dict(o, index=i) for i, o in ctx.completion.outcomes(job_id).items()}
    out = {}
    for index, row in rows.items():
        try:
            out[index] = ClipRecord.from_json(row)
        except (TypeError, ValueError):
            continue
    return out


def _started(ctx: Context, job_id: str) -> set[int]:
    """Slots whose cut has begun at least once: the clip stage's attempts hash ('{index}' -> count)."""
    raw = ctx.redis.hgetall(keys.job_attempts(job_id))
    out = set()
    for name, count in raw.items():
        index = keys.text(name)
        if index.isdigit() and int(count or 0) > 0:
            out.add(int(index))
    return out


def slot_views(view: JobView, records: dict[int, ClipRecord], started: set[int]) -> list[SlotView]:
    total_ms = max(1, view.slots[-1].end_ms if view.slots else 1)
    out = []
    for slot in view.slots:
        line = view.request.lines[slot.index]
        rec = records.get(slot.index)
        state = str(rec.outcome) if rec else ("running" if slot.index in started else "pending")
        out.append(
            SlotView(
                index=slot.index,
                text=line.text,
                start_ms=slot.start_ms,
                end_ms=slot.end_ms,
                video_id=line.clip.video_id,
                source_start_ms=line.clip.start_ms,
                source_end_ms=line.clip.end_ms,
                state=state if state in STATES else "failed",
                reason=(rec.reason or rec.last_error) if rec else None,
                attempts=rec.attempts if rec else 0,
                left_pct=round(slot.start_ms * 100 / total_ms, 4),
                width_pct=round(slot.duration_ms * 100 / total_ms, 4),
            )
        )
    return out


def missing_lines(groups: list[dict[str, Any]], known: set[int] | None = None) -> list[MissingLine]:
    """report.json's missing_footage groups as one list in timeline order; ``known``: only those slots."""
    out = []
    for g in groups:
        for line in g.get("lines") or []:
            index = int(line["index"])
            if known is not None and index not in known:
                continue
            out.append(
                MissingLine(
                    index=index,
                    text=str(line.get("text", "")),
                    at=str(line.get("at", "")),
                    video_id=str(g.get("video_id", "")),
                    outcome=str(g.get("outcome", "")),
                    reason=g.get("reason"),
                    action=str(g.get("action", "")),
                )
            )
    return sorted(out, key=lambda m: m.index)


def result_urls(job: RenderJob, has_report: bool) -> dict[str, str | None]:
    """Where the page links the job's results: the API's own routes, on this origin, so the login
    cookie reaches them (the media routes serve the video and poster from either store)."""
    have = results.available(job)
    return {
        "report_url": f"/jobs/{job.id}/report" if has_report else None,
        "output_url": f"/jobs/{job.id}/video" if have[layout.FINAL] else None,
        "poster_url": f"/jobs/{job.id}/poster" if have[layout.POSTER] else None,
    }


def load(ctx: Context, job_id: str) -> JobPage:
    """Everything the job page shows. Raises JobNotFound."""
    job = ctx.store.get(job_id)
    status = JobStatus(job.status)
    if job.request_hash.startswith(INVALID_PREFIX):  # a refused message's record: its error says why
        return JobPage(job, status, job.current_error(), [], [], ctx.store.history(job_id), refused=True)
    view = ctx.view(job_id)
    rep = read_report(ctx, job)
    try:
        records = _records(ctx, job_id, rep)
    except redis.RedisError:
        if not status.is_final:  # the live view needs Redis: 503, as the page says
            raise
        records = {}  # an ended job without report: status and error from the record, slots without outcome
    started = set() if rep is not None or status.is_final else _started(ctx, job_id)
    slots = slot_views(view, records, started)
    if rep is not None:
        missing = missing_lines((rep.get("summary") or {}).get("missing_footage") or [])
    else:
        groups = [g.model_dump(mode="json") for g in report.missing_footage(view, records)]
        missing = missing_lines(groups, known=set(records))
    urls = result_urls(job, rep is not None)
    return JobPage(
        job=job,
        status=status,
        error=job.current_error(),
        slots=slots,
        missing=missing,
        history=ctx.store.history(job_id),
        report_url=urls["report_url"],
        video_url=urls["output_url"],
        poster_url=urls["poster_url"],
    )


def duration_s(job: RenderJob, now: datetime | None = None) -> float | None:
    """From submit to the final status, or until now while the job runs."""
    if job.created_at is None:
        return None
    end = job.finished_at or now or datetime.now(UTC)
    return max(0.0, (_aware(end) - _aware(job.created_at)).total_seconds())


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
