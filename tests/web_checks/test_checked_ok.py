"""Audit W: what was checked on the page and the API as an attack surface and found correct (these pass)."""

from __future__ import annotations

import time
from pathlib import Path

from clipline.web import session
from clipline.web.render import safe_next
from pipeline.models import JobStatus, parse_request
from pipeline.store import JobStore
from tests.http_edges.harness import api, one_line_request, settings_for
from tests.integration.redisdb import claimed_db

TOKEN = "audit-w-token-0123456789abcdef0123456789"
HOSTILE = '</span><script>alert(1)</script>"><img src=x onerror=alert(2)>\u202e'


def test_hostile_text_is_escaped_and_pages_carry_their_headers(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    store = JobStore(settings.database_url)
    body = one_line_request("audit-w-xss")
    body["lines"][0]["text"] = HOSTILE  # type: ignore[index]
    body["mix_request_id"] = HOSTILE.replace("\u202e", "")
    store.create_or_get(parse_request(body))
    assert store.advance("audit-w-xss", status=JobStatus.FAILED, error=HOSTILE)
    with api(settings) as client:
        for path in (
            "/",
            "/ui/jobs/audit-w-xss",
            "/ui/jobs/audit-w-xss/live",
            "/?q=%3Cscript%3E",
            "/ui/jobs/%3Cb%3E",
        ):
            answer = client.get(path)
            assert "<script>alert" not in answer.text and "<img src=x" not in answer.text, path
            csp = answer.headers["content-security-policy"]
            assert (
                "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            )
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["cache-control"] == "no-store"


def test_cross_site_posts_do_nothing_with_a_session_cookie(tmp_path: Path) -> None:
    with claimed_db("audit-w") as redis_url:
        _cross_site(tmp_path, redis_url)


def _cross_site(tmp_path: Path, redis_url: str) -> None:
    settings = settings_for(tmp_path, redis_url=redis_url, CLIPLINE_API_TOKEN=TOKEN)
    store = JobStore(settings.database_url)
    store.create_or_get(parse_request(one_line_request("audit-w-csrf")))
    with api(settings) as client:
        client.get("/login")
        csrf = str(client.cookies.get("clipline_csrf"))
        assert (
            client.post(
                "/login", data={"token": TOKEN, "csrf": csrf, "next": "/"}, follow_redirects=False
            ).status_code
            == 303
        )
        # a form from elsewhere: the cookie would not even be sent (SameSite=Strict); without the field:
        forged = client.post("/ui/jobs/audit-w-csrf/cancel", data={"confirmed": "yes"})
        assert forged.status_code == 403
        wrong = client.post("/ui/jobs/audit-w-csrf/cancel", data={"confirmed": "yes", "csrf": "x" * 43})
        assert wrong.status_code == 403
        assert client.post("/jobs/audit-w-csrf/cancel").status_code == 401  # JSON writes need the bearer
        assert client.post("/jobs", json=one_line_request("audit-w-csrf2")).status_code == 401
        assert store.get("audit-w-csrf").status == JobStatus.PENDING.value
        cookie = client.cookies.get("clipline_session")
    assert cookie
    # A new token ends the session; a cookie's expiry is honoured
    assert session.check_cookie("another-token-0123456789", cookie) is session.Access.MISSING
    old = session.sign(TOKEN, expires_at=time.time() - 1)
    assert session.check_cookie(TOKEN, old) is session.Access.EXPIRED
    assert session.bearer_ok(TOKEN, "Bearer \u00ff\u0000") is False


def test_next_never_leaves_the_site() -> None:
    for bad in ("//evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)", "evil"):
        assert safe_next(bad) == "/"
    assert safe_next("/ui/jobs/a?x=1") == "/ui/jobs/a?x=1"
