"""The jobs list: newest first, filtered by status, searched by id or mix_request_id, in pages of 25."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from starlette.requests import Request

from clipline.web import job_list
from clipline.web.render import page
from pipeline.context import Context
from pipeline.models import JobStatus, parse_request
from pipeline.settings import load_settings


def _line(i: int) -> dict[str, object]:
    return {
        "text": f"l{i}",
        "start_ms": i * 1000,
        "end_ms": i * 1000 + 1000,
        "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000},
    }


def _ctx(tmp_path: Path) -> Context:
    ctx = Context(load_settings({"CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db"}))
    for n in range(30):
        raw = {"job_id": f"job-{n:02d}", "mix_request_id": f"mix-{n % 3}", "lines": [_line(0), _line(1)]}
        ctx.store.create_or_get(parse_request(raw))
        final = JobStatus.COMPLETED_WITH_GAPS if n % 5 == 0 else JobStatus.COMPLETED
        stats = {
            "total": 2,
            "succeeded": 1 + (n % 5 != 0),
            "fallback_local": 0,
            "placeholder": int(n % 5 == 0),
        }
        ctx.store.advance(f"job-{n:02d}", status=final, metrics={"render": {"clip_stats": stats}})
    return ctx


def test_pages_filters_and_counts(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)  # finished jobs only: the list needs no Redis for them
    first = job_list.load(ctx, status=None, query="", page=1)
    assert (first.total, first.pages, len(first.rows)) == (30, 2, 25)
    assert first.rows[0].job.id == "job-29" and first.rows[-1].job.id == "job-05"
    second = job_list.load(ctx, status=None, query="", page=2)
    assert [r.job.id for r in second.rows] == ["job-04", "job-03", "job-02", "job-01", "job-00"]
    assert job_list.load(ctx, status=None, query="", page=99).page == 2  # past the end: the last page
    gaps = job_list.load(ctx, status=JobStatus.COMPLETED_WITH_GAPS, query="mix-0", page=1)
    assert [r.job.id for r in gaps.rows] == ["job-15", "job-00"]  # n % 5 == 0 and n % 3 == 0
    assert gaps.rows[0].counts == {"ok": 1, "local": 0, "placeholder": 1, "failed": 0}
    assert job_list.query_string(gaps, 2) == {"page": 2, "status": "COMPLETED_WITH_GAPS", "q": "mix-0"}
    assert job_list.parse_status("completed") is JobStatus.COMPLETED and job_list.parse_status("x") is None


def test_the_list_page_links_its_pages_and_keeps_the_filter(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}

    def html(lp: job_list.ListPage) -> str:
        href = lambda n: "/?" + urlencode(job_list.query_string(lp, n))  # noqa: E731 - as routes.py does
        return bytes(
            page(Request(scope), "jobs.html", lp=lp, statuses=list(JobStatus), page_href=href).body
        ).decode()

    searched = html(job_list.load(ctx, status=None, query="job", page=1))
    assert 'rel="next" href="/?page=2&amp;q=job"' in searched and 'rel="prev"' not in searched
    assert 'value="job"' in searched and "Page 1 of 2" in searched
    filtered = html(job_list.load(ctx, status=JobStatus.COMPLETED, query="", page=1))
    assert '<option value="COMPLETED" selected>' in filtered and 'rel="next"' not in filtered
