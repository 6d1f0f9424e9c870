"""Audit W: the operations page and the HTTP API as an attack surface.
The defects found are fixed; each test's docstring says what was wrong before.

The app runs in process (FastAPI's TestClient, tests/http_edges/harness.py) over a throwaway SQLite
database; Redis and the broker are ports where nothing listens unless a test says otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.models import parse_request
from pipeline.store import JobStore
from tests.http_edges.harness import api, csrf_of, one_line_request, settings_for


def _record(settings, n: int) -> None:  # type: ignore[no-untyped-def]
    store = JobStore(settings.database_url)
    for i in range(n):
        store.create_or_get(parse_request(one_line_request(f"audit-w-{i:03d}")))


def test_the_submit_excerpt_counts_lines_at_newlines_only_so_a_u2028_lyric_marks_the_right_line(
    tmp_path: Path,
) -> None:
    """Fixed (audit W); what was wrong before:
    The submit page quotes the lines around each problem and marks the problem's line ("here").
    json_spans.position counts lines by "\\n" only, but Problem.excerpt (clipline/web/submit.py) splits
    the text with str.splitlines(), which also splits at U+2028, U+2029, U+0085 (all legal raw inside a
    JSON string, e.g. in a lyric). A lyric holding U+2028 shifts every later line by one: the page
    marks the wrong line of the user's text beside the message (here: the lyric's second half instead
    of the "end_ms" line). Right: excerpt splits the text the way position() counts lines ("\\n")."""
    text = (
        "{\n"
        '  "job_id": "audit-w-sep",\n'
        '  "lines": [{\n'
        '    "text": "first\u2028second",\n'
        '    "start_ms": 0,\n'
        '    "end_ms": 0,\n'
        '    "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000}\n'
        "  }]\n"
        "}\n"
    )
    settings = settings_for(tmp_path)
    with api(settings) as client:
        answer = client.post("/ui/submit", data={"request": text, "csrf": csrf_of(client)})
    assert answer.status_code == 422, answer.text[:300]
    marked = re.findall(r'<li value="(\d+)" class="here"><code>(.*?)</code>', answer.text, re.S)
    assert marked, answer.text[:2000]
    # The problem is lines[0].end_ms, on line 6 of the text ("end_ms": 0)
    assert ("6", "    &#34;end_ms&#34;: 0,") in marked, marked


def test_a_page_number_past_the_last_page_shows_the_last_page_and_its_jobs(tmp_path: Path) -> None:
    """Fixed (audit W); what was wrong before:
    27 jobs make 2 pages of 25. GET /?page=9 says "Page 2 of 2" (job_list.load clamps ListPage.page
    to the last page) but queries offset (9-1)*25 = 200 before clamping, so it shows no row and
    "No jobs match." under "27 job(s)", with a "Newer" link to page 1. The label and the rows disagree.
    Right: clamp the page before querying (show page 2's 2 jobs), or keep the asked page number with an
    honest empty page; never a page labelled 2 that is not page 2."""
    settings = settings_for(tmp_path)
    _record(settings, 27)
    with api(settings) as client:
        last = client.get("/?page=2")
        past = client.get("/?page=9")
    assert last.status_code == 200 and past.status_code == 200
    rows_last = re.findall(r'<tr data-job="([^"]+)"', last.text)
    assert len(rows_last) == 2
    if "Page 2 of 2" in past.text:
        assert re.findall(r'<tr data-job="([^"]+)"', past.text) == rows_last, "labelled page 2, shows no jobs"


def test_odd_page_numbers_and_long_searches_are_clamped_into_the_jobs_page(tmp_path: Path) -> None:
    """Fixed (audit W); what was wrong before:
    GET /?page=0, /?page=x, /?page=100001 and /?q=<201 characters> (a bookmark, a typed URL, an old
    link) answer the JSON API's error body (application/json, 422 request_invalid) at the operations
    page's address, without the page's headers (no Content-Security-Policy, no Cache-Control: no-store),
    and in English on a Chinese page. job_list.load already clamps the page (max(1, page)) and the
    search (query[:128]), but FastAPI's Query(ge=1, le=100_000) / Query(max_length=200) refuse first, and
    api_errors.fastapi_invalid never answers a page (it checks is_page() only for 500 and 503).
    Right: the jobs page (page 1 / the clamped search), or the page's own HTML error page."""
    settings = settings_for(tmp_path)
    _record(settings, 1)
    bad = []
    with api(settings) as client:
        for query in ("page=0", "page=x", "page=100001", "q=" + "a" * 201):
            answer = client.get(f"/?{query}", headers={"Accept-Language": "zh-CN"})
            html = answer.headers.get("content-type", "").startswith("text/html")
            csp = "content-security-policy" in answer.headers
            if not (html and csp):
                bad.append((query[:12], answer.status_code, answer.headers.get("content-type")))
    assert not bad, bad


def test_the_submit_form_accepts_a_file_within_its_stated_limit_with_the_forms_overhead(
    tmp_path: Path,
) -> None:
    """Fixed (audit W); what was wrong before:
    The submit form allows a file up to CLIPLINE_API_MAX_BODY_BYTES (data-limit; app.js checkSize
    refuses only size > limit, and submit_text checks the text against the same limit). But the
    multipart request carrying it also holds the boundaries, the csrf field and the empty text field,
    so api_gate.RequestGate counts more than the limit and answers the JSON API's 413
    {"error": {"code": "body_too_large"}} (application/json, no page, no CSP) to the browser for a file
    the page said was fine. Right: a file within the stated limit is submitted (the page's form allows
    for its own overhead), or the page shows its own "too big" problem with the text kept."""
    limit = 20_000
    settings = settings_for(tmp_path, CLIPLINE_API_MAX_BODY_BYTES=str(limit))
    request = json.dumps(one_line_request("audit-w-big"))
    content = (request + " " * (limit - 300 - len(request))).encode()
    assert len(content) <= limit - 300
    with api(settings) as client:
        csrf = csrf_of(client)
        answer = client.post(
            "/ui/submit",
            data={"csrf": csrf, "request": ""},
            files={"upload": ("request.json", content, "application/json")},
            follow_redirects=False,
        )
    assert answer.headers.get("content-type", "").startswith("text/html") or answer.status_code == 303, (
        answer.status_code,
        answer.headers.get("content-type"),
        answer.text[:200],
    )


def test_a_form_body_past_the_forms_allowance_gets_the_pages_own_413(tmp_path: Path) -> None:
    """Past the form's allowance (2 x the limit + 64 KiB) the page answers its own HTML 413 page
    (CSP, the page's language), not the JSON API's body; the JSON API keeps its limit."""
    limit = 2_000
    settings = settings_for(tmp_path, CLIPLINE_API_MAX_BODY_BYTES=str(limit))
    with api(settings) as client:
        csrf = csrf_of(client)
        page = client.post(
            "/ui/submit",
            data={"csrf": csrf, "request": ""},
            files={"upload": ("request.json", b" " * (3 * limit + 70_000), "application/json")},
            headers={"Accept-Language": "zh-CN"},
        )
        json_api = client.post(
            "/jobs", content=b" " * (limit + 1), headers={"Content-Type": "application/json"}
        )
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers and "内容过大" in page.text
    assert json_api.status_code == 413 and json_api.json()["error"]["code"] == "body_too_large"
