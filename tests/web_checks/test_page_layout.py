"""Audit W: long unbroken text from outside (errors quoting URLs, field names from the request) on the
operations page, in a real headless Chromium (Debian's, driven by Playwright as tests/integration
does). The page is served from the app in process: every browser request to http://clipline.test/ is
answered by FastAPI's TestClient. README: "layout at 1280x800 and 390x844 ... no sideways scrolling"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from pipeline.models import JobStatus, parse_request
from pipeline.store import JobAttempt, JobStore
from tests.http_edges.harness import api, one_line_request, settings_for
from tests.integration.browser import PHONE, chromium

SITE = "http://clipline.test"
#: What a failed fetch's error looks like: a signed CDN URL (signature redacted), one unbroken word.
LONG_URL = (
    "https://cdn-eu-west-3.media.example.com/hls/2026/11/22/v_91f3c2d1e0b94f6a8c7d/"
    + "x" * 160
    + "/index_1080p_h264_aac_6000k.m3u8?Expires=1795000000&Key-Pair-Id=&Signature=&sid=0123456789abcdef"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _serve(page: Page, client: TestClient) -> None:
    def handle(route):  # type: ignore[no-untyped-def]
        req = route.request
        url = urlsplit(req.url)
        target = url.path + (f"?{url.query}" if url.query else "")
        headers = {
            k: v for k, v in req.headers.items() if k.lower() not in ("host", "content-length", "cookie")
        }
        answer = client.request(
            req.method, target, headers=headers, content=req.post_data_buffer, follow_redirects=False
        )
        out = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "set-cookie")}
        route.fulfill(status=answer.status_code, headers=out, body=answer.content)

    page.route(f"{SITE}/**", handle)


def _sideways(page: Page) -> int:
    return int(
        page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def test_an_earlier_attempts_long_error_wraps_on_the_job_page(tmp_path: Path, browser: Browser) -> None:
    """Fixed (audit W); what was wrong before:
    A retried job lists its earlier attempts with their errors ("Attempt 1: failed · ... · <error>",
    _live.html's .history). Errors quote source URLs, one unbroken word of a few hundred characters;
    the job's current error wraps (.error has overflow-wrap: anywhere) but .history / span.reason does
    not (app.css sets overflow-wrap only on td.reason), so on a phone (390x844) the whole page scrolls
    sideways by hundreds of pixels. Right: .history wraps like the other error texts (no sideways scroll)."""
    settings = settings_for(tmp_path)
    store = JobStore(settings.database_url)
    store.create_or_get(parse_request(one_line_request("audit-w-hist")))
    assert store.advance("audit-w-hist", status=JobStatus.FAILED, error=f"all clips failed: {LONG_URL}")
    with store.session() as s:
        s.add(
            JobAttempt(
                job_id="audit-w-hist",
                attempt=0,
                status="FAILED",
                finished_at=datetime.now(UTC),
                report_path=None,
                output_path=None,
                clip_stats=None,
                error=f"SourceInvalid: playlist refused: {LONG_URL}",
            )
        )
        s.commit()
    with api(settings) as client:
        assert "SourceInvalid" in client.get("/ui/jobs/audit-w-hist").text
        context = browser.new_context(viewport=PHONE)
        try:
            page = context.new_page()
            _serve(page, client)
            page.goto(f"{SITE}/ui/jobs/audit-w-hist")
            page.wait_for_selector(".history")
            over = _sideways(page)
        finally:
            context.close()
    assert over <= 0, f"the job page scrolls {over}px sideways at 390px wide"


def test_a_long_unknown_field_name_wraps_in_the_submit_pages_problem_list(
    tmp_path: Path, browser: Browser
) -> None:
    """Fixed (audit W); what was wrong before:
    The submit form lists every problem with its field (<code>{{ p.field }}</code> in .error-summary
    and in p.problem). An unknown key is a field too ("Extra inputs are not permitted"), and its name is
    whatever the pasted JSON holds: one unbroken word of 300 characters makes the submit page scroll
    sideways on a phone and on a desktop (app.css gives .error-summary no overflow-wrap; only the
    quoted excerpt scrolls in its own box). Right: the problem list wraps; no sideways scroll."""
    settings = settings_for(tmp_path)
    body = one_line_request("audit-w-wide")
    body["metadata_" + "k" * 300] = 1
    import json

    with api(settings) as client:
        overs = []
        for viewport in (PHONE, {"width": 1280, "height": 800}):
            context = browser.new_context(viewport=viewport)
            try:
                page = context.new_page()
                _serve(page, client)
                page.goto(f"{SITE}/ui/submit")
                page.fill("#request", json.dumps(body, indent=2))
                page.click("#submit-button")
                page.wait_for_selector("#problems")
                overs.append(_sideways(page))
            finally:
                context.close()
    assert max(overs) <= 0, f"the submit page scrolls sideways by {overs} px (phone, desktop)"
