"""What the jobs list shows: one page of jobs, newest first, filtered by status and searched by id."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.context import Context
from pipeline.models import ClipOutcome, JobStatus
from pipeline.store import RenderJob

from .job_page import duration_s

PAGE_SIZE = 25
#: The highest page number the list asks the database for.
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Row:
    job: RenderJob
    status: JobStatus
    duration_s: float | None
    counts: dict[str, int] | None  # outcome -> clips so far; None: unknown (Redis unreachable)
    total: int


@dataclass(frozen=True)
class ListPage:
    rows: list[Row]
    total: int
    page: int
    pages: int
    status: JobStatus | None
    query: str


def counts(ctx: Context, job: RenderJob) -> tuple[dict[str, int] | None, int]:
    """Clips by outcome: from the record's clip_stats once the job has them, else from Redis (None while
    Redis cannot be reached: the list still shows every job, as ``GET /jobs`` does with ``clips`` null)."""
    stats = (job.metrics or {}).get("render", {}).get("clip_stats")
    if isinstance(stats, dict) and stats.get("total") is not None:
        return {o.value: int(stats.get(o.public_name) or 0) for o in ClipOutcome}, int(stats["total"])
    total = len((job.request or {}).get("lines") or [])
    if JobStatus(job.status).is_final:
        return {o.value: 0 for o in ClipOutcome}, total
    try:
        seen = Counter(str(o.get("outcome")) for o in ctx.completion.outcomes(job.id).values())
    except redis.RedisError:
        return None, total
    return {o.value: seen[o.value] for o in ClipOutcome}, total


def parse_status(value: str | None) -> JobStatus | None:
    """A status filter from the query string; anything unknown means no filter."""
    try:
        return JobStatus((value or "").upper()) if value else None
    except ValueError:
        return None


def parse_page(value: str | None) -> int:
    """A page number from the query string: anything odd (0, "x", too large) is clamped, never refused."""
    value = (value or "").strip()
    if not (value.isascii() and value.isdigit()):  # "²".isdigit() is true
        return 1
    return MAX_PAGE if len(value) > 6 else min(max(1, int(value)), MAX_PAGE)


def load(ctx: Context, *, status: JobStatus | None, query: str, page: int) -> ListPage:
    query = query.strip()[:128]
    page = max(1, page)
    found, total = ctx.store.search(
        status=status, text=query or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    pages = max(1, -(-total // PAGE_SIZE))
    if page > pages:  # past the last page (an old link, a typed number): show the last page, as labelled
        page = pages
        found, total = ctx.store.search(
            status=status, text=query or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        pages = max(1, -(-total // PAGE_SIZE))
    rows = []
    for job in found:
        by_outcome, clips = counts(ctx, job)
        rows.append(Row(job, JobStatus(job.status), duration_s(job), by_outcome, clips))
    return ListPage(rows, total, min(page, pages), pages, status, query)


def query_string(lp: ListPage, page: int) -> dict[str, Any]:
    """The query parameters of another page of the same list."""
    params: dict[str, Any] = {"page": page}
    if lp.status is not None:
        params["status"] = lp.status.value
    if lp.query:
        params["q"] = lp.query
    return params
