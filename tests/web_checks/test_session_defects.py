"""Audit W: the page's login session (CLIPLINE_API_TOKEN set).

The defects found are fixed; each test's docstring says what was wrong before.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pipeline.models import parse_request
from pipeline.store import JobStore
from tests.http_edges.harness import api, one_line_request, settings_for

LIVE_REDIS = "redis://127.0.0.1:6379/0"
TOKEN = "audit-w-token-0123456789abcdef0123456789"


def _login(client, csrf: str) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/login", data={"token": TOKEN, "next": "/", "csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]


def test_after_the_session_ends_a_cancel_press_comes_back_to_the_jobs_page(tmp_path: Path) -> None:
    """Fixed (audit W); what was wrong before:
    README: "an expired session sends you back to the login page, also from a page that is following
    a job". Pressing Cancel (or Retry) on a job page whose session has ended is a POST to
    /ui/jobs/{id}/cancel; api_gate._unauthorised sends it to /login?next=/ui/jobs/{id}/cancel, and after
    logging in the browser GETs that path, which no route serves: the page's 404 "Page not found".
    Right: come back to the job's page (/ui/jobs/{id}), where the action can be pressed again."""
    # A live Redis: the page of a job still running answers 503 without one (the live view needs it)
    settings = settings_for(tmp_path, redis_url=LIVE_REDIS, CLIPLINE_API_TOKEN=TOKEN)
    JobStore(settings.database_url).create_or_get(parse_request(one_line_request("audit-w-exp")))
    with api(settings) as client:
        login_page = client.get("/login")
        csrf = client.cookies.get("clipline_csrf")
        assert login_page.status_code == 200 and csrf
        # The session has ended (no session cookie): the form's POST goes to the login page first
        pressed = client.post(
            "/ui/jobs/audit-w-exp/cancel", data={"csrf": csrf, "confirmed": "yes"}, follow_redirects=False
        )
        assert pressed.status_code == 303, pressed.text[:200]
        where = urlsplit(pressed.headers["location"])
        assert where.path == "/login"
        back_to = parse_qs(where.query)["next"][0]
        answer = client.post(
            "/login", data={"token": TOKEN, "next": back_to, "csrf": csrf}, follow_redirects=False
        )
        assert answer.status_code == 303
        landing = client.get(answer.headers["location"], headers={"Accept": "text/html"})
    assert landing.status_code == 200, (answer.headers["location"], landing.status_code)


def test_log_out_revokes_the_session_so_a_copy_of_its_cookie_is_refused(tmp_path: Path) -> None:
    """Fixed (audit W); what was wrong before:
    "Log out" (session.log_out) only asks the browser to delete its cookie: the cookie itself is a
    self-contained "v1.<expiry>.<hmac>" (session.sign) that nothing revokes, so a copy of it (another tab
    of a shared profile, a proxy log, a stolen cookie) keeps opening the page and reading the JSON API
    (report.json, the video) for the rest of CLIPLINE_WEB_SESSION_TTL_S (8 h) after the operator logged
    out. Right: logging out ends that session on the server too (e.g. a per-session id that logout
    revokes, or a logout epoch in the signed value checked against the store)."""
    settings = settings_for(tmp_path, CLIPLINE_API_TOKEN=TOKEN)
    JobStore(settings.database_url).create_or_get(parse_request(one_line_request("audit-w-out")))
    with api(settings) as client:
        client.get("/login")
        csrf = str(client.cookies.get("clipline_csrf"))
        _login(client, csrf)
        copy = str(client.cookies.get("clipline_session"))
        assert client.get("/", follow_redirects=False).status_code == 200
        out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303 and client.cookies.get("clipline_session") is None
    with api(settings) as other:  # the copy, replayed after the logout
        replay_page = other.get("/", cookies={"clipline_session": copy}, follow_redirects=False)
        replay_api = other.get("/jobs/audit-w-out", cookies={"clipline_session": copy})
    assert replay_page.status_code == 303, "the logged-out session still opens the page"
    assert replay_api.status_code == 401, "the logged-out session still reads the JSON API"
