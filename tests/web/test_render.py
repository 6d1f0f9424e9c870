"""Pages render job data as text (lyrics are user text), carry a strict CSP, and never redirect off-site."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from clipline.web import job_page
from clipline.web.render import page, safe_next
from pipeline.context import JobView
from pipeline.models import ClipOutcome, ClipRecord, JobStatus, parse_request
from pipeline.report import missing_footage
from pipeline.tables import RenderJob
from pipeline.timeline import build_slots

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _request(lang: str = "en") -> Request:
    headers = [(b"accept-language", b"zh-CN" if lang == "zh" else b"en-US"), (b"host", b"testserver")]
    return Request(
        {"type": "http", "method": "GET", "path": "/ui/jobs/j", "headers": headers, "query_string": b""}
    )


def _job_page(quality: str = "final") -> job_page.JobPage:
    raw = {
        "job_id": "j",
        "output": {"width": 1280, "height": 720, "fps": 30, "quality": quality},
        "mix_request_id": EVIL,
        "lines": [
            {
                "text": EVIL,
                "start_ms": 0,
                "end_ms": 1000,
                "clip": {"video_id": "v1", "start_ms": 0, "end_ms": 900},
            },
            {
                "text": "第二句",
                "start_ms": 1000,
                "end_ms": 3000,
                "clip": {"video_id": "v2", "start_ms": 0, "end_ms": 2000},
            },
        ],
    }
    request = parse_request(raw)
    view = JobView(request, build_slots(request))
    records = {0: ClipRecord(index=0, outcome=ClipOutcome.PLACEHOLDER, reason=EVIL)}
    job = RenderJob(
        id="j",
        mix_request_id=EVIL,
        status=JobStatus.EXTRACTING.value,
        progress=40,
        error_log="",
        request=request.model_dump(mode="json"),
        metrics={},
        attempts=1,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    slots = job_page.slot_views(view, records, started={1})
    return job_page.JobPage(
        job=job,
        status=JobStatus.EXTRACTING,
        error=EVIL,
        slots=slots,
        missing=job_page.missing_lines(
            [g.model_dump(mode="json") for g in missing_footage(view, records)], known=set(records)
        ),
        history=[],
        video_url="https://cdn.example/j/final.mp4?sig=1",
    )


def test_job_data_is_escaped_and_the_csp_allows_only_this_site_and_the_video_host() -> None:
    jp = _job_page()
    response = page(
        _request(), "job.html", jp=jp, media=(jp.video_url,), notice=None, error=None, error_key=None
    )
    html = bytes(response.body).decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert (
        html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") >= 4
    )  # lyric, tip, reason, error, mix id
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "media-src 'self' https://cdn.example" in csp
    assert "unsafe-inline" not in csp


def test_slots_are_to_scale_and_running_differs_from_pending() -> None:
    jp = _job_page()
    assert [(s.state, s.left_pct, s.width_pct) for s in jp.slots] == [
        ("placeholder", 0.0, 33.3333),
        ("running", 33.3333, 66.6667),
    ]
    assert [m.index for m in jp.missing] == [0]  # only slots with an outcome, not the running one
    assert jp.can_cancel and not jp.can_retry


@pytest.mark.parametrize(("lang", "words"), [("en", "Draft: a quarter of the pixels"), ("zh", "草稿")])
def test_a_draft_says_so_on_its_page_and_a_final_render_does_not(lang: str, words: str) -> None:
    def html(quality: str) -> str:
        jp = _job_page(quality)
        kwargs = {"jp": jp, "notice": None, "error": None, "error_key": None}
        return bytes(page(_request(lang), "job.html", **kwargs).body).decode()

    assert 'data-quality="draft"' in html("draft") and words in html("draft")
    assert 'data-quality="final"' in html("final") and words not in html("final")


def test_chinese_page() -> None:
    html = bytes(
        page(_request("zh"), "job.html", jp=_job_page(), notice=None, error=None, error_key=None).body
    )
    text = html.decode()
    assert '<html lang="zh-CN">' in text and "剪辑中" in text and "占位画面" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/ui/jobs/j?x=1", "/ui/jobs/j?x=1"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_safe_next_stays_on_this_site(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_a_job_that_ended_without_a_report_does_not_claim_its_footage_is_complete() -> None:
    jp = _job_page()
    jp.status, jp.missing = JobStatus.FAILED, []
    html = bytes(page(_request(), "job.html", jp=jp, notice=None, error=None, error_key=None).body).decode()
    assert "ended without a report" in html and "Every finished line" not in html
    jp.status = JobStatus.EXTRACTING
    html = bytes(page(_request(), "job.html", jp=jp, notice=None, error=None, error_key=None).body).decode()
    assert "Every finished line has its planned footage." in html
