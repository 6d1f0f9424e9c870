"""The login cookie: signed by the token, expires, cannot be forged or moved to another token."""

from __future__ import annotations

import time

from starlette.requests import Request

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
    version, expiry, mac = value.split(".")
    later = f"{version}.{int(expiry) + 86400}.{mac}"  # a longer life without the key
    for bad in (
        later,
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
