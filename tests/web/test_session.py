"""The login cookie: signed by the token, expires, cannot be forged or moved to another token."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from clipline.web import session
from clipline.web.session import Access


def _request(method: str = "GET", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": method, "path": "/", "headers": raw, "query_string": b""})


def test_a_signed_cookie_grants_until_it_expires() -> None:
    now = time.time()
    value = session.sign("tok", expires_at=now + 60)
    assert session.check_cookie("tok", value, now=now) is Access.GRANTED
    assert session.check_cookie("tok", value, now=now + 61) is Access.EXPIRED


def test_forged_moved_or_malformed_cookies_grant_nothing() -> None:
    value = session.sign("tok", expires_at=time.time() + 60)
    version, sid, expiry, mac = value.split(".")
    later = f"{version}.{sid}.{int(expiry) + 86400}.{mac}"  # a longer life without the key
    other_sid = f"{version}.x{sid}.{expiry}.{mac}"  # another session's id under this one's signature
    for bad in (
        later,
        other_sid,
        f"v1.{expiry}.{mac}",  # the old format (no session id): log in again
        session.sign("other-token", expires_at=time.time() + 60),
        "",
        "v1..",
        "v2.1.x",
        "junk",
    ):
        assert session.check_cookie("tok", bad) is Access.MISSING, bad


def test_access_by_header_or_cookie_and_open_without_a_token() -> None:
    assert session.access(_request(), None) is Access.OPEN
    assert session.access(_request(headers={"Authorization": "Bearer tok"}), "tok") is Access.GRANTED
    assert session.access(_request(headers={"Authorization": "Bearer nope"}), "tok") is Access.MISSING
    assert session.access(_request(headers={"Authorization": "Bearer 令牌"}), "tok") is Access.MISSING
    cookie = f"{session.COOKIE}={session.sign('tok', expires_at=time.time() - 1)}"
    assert session.access(_request(headers={"Cookie": cookie}), "tok") is Access.EXPIRED


def test_the_cookie_reads_the_json_api_but_never_writes() -> None:
    cookie = f"{session.COOKIE}={session.sign('tok', expires_at=time.time() + 60)}"
    assert session.cookie_grants(_request("GET", {"Cookie": cookie}), "tok")
    assert not session.cookie_grants(_request("POST", {"Cookie": cookie}), "tok")
    assert not session.cookie_grants(_request("GET"), "tok")


def test_csrf_needs_the_cookie_and_the_field_to_match() -> None:
    token = session.csrf_value(_request())
    assert len(token) == 43
    with_cookie = _request("POST", {"Cookie": f"{session.CSRF_COOKIE}={token}"})
    assert session.csrf_value(with_cookie) == token
    assert session.csrf_ok(with_cookie, token)
    assert not session.csrf_ok(with_cookie, token[:-1] + "x")
    assert not session.csrf_ok(with_cookie, None)
    assert not session.csrf_ok(_request("POST"), token)


def test_a_logged_out_session_is_refused_from_any_copy_of_its_cookie() -> None:
    """Log out revokes the cookie's session id on the server (before, it only deleted the browser's copy)."""
    value = session.sign("tok", expires_at=time.time() + 60)
    other = session.sign("tok", expires_at=time.time() + 60)
    request = _request("POST", {"Cookie": f"{session.COOKIE}={value}"})
    session.log_out(Response(), request, "tok")
    assert session.check_cookie("tok", value) is Access.EXPIRED
    assert session.check_cookie("tok", other) is Access.GRANTED  # other sessions go on


def test_a_logout_is_shared_through_redis_with_every_api_process() -> None:
    """Another process (a fresh Revocations) sees the logout through Redis."""
    import pytest
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    here, there = session.Revocations(), session.Revocations()
    here.use(url)
    there.use(url)
    assert here.revoke("test-sid-shared", time.time() + 30)
    assert there.revoked("test-sid-shared")
    assert not there.revoked("test-sid-never")
    redis.Redis.from_url(url).delete("clipline:web:revoked:test-sid-shared")


def test_after_logging_in_again_a_form_post_comes_back_to_its_page() -> None:
    """A job's Cancel/Retry POST returns to the job's page (before: to the POST-only action path, a 404)."""

    def post(path: str) -> Request:
        return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""})

    assert session.come_back_to(post("/ui/jobs/j-1/cancel")) == "/ui/jobs/j-1"
    assert session.come_back_to(post("/ui/jobs/j-1/retry")) == "/ui/jobs/j-1"
    assert session.come_back_to(post("/ui/submit")) == "/ui/submit"
    assert session.come_back_to(post("/ui/other")) == "/"
