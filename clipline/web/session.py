"""Who may see the page: the login cookie, the bearer header, and the forms' CSRF token.

With ``CLIPLINE_API_TOKEN`` unset everything is open, as the JSON API is. With it set, a person logs
in with the token once: the answer is an HttpOnly, SameSite=Strict cookie holding an expiry and an
HMAC of it keyed by the token (changing the token ends every session). An expired or forged cookie
sends the person to the login page. ``Authorization: Bearer <token>`` works as well (scripts).

Every form carries a CSRF token: a random value in its own SameSite=Strict cookie, repeated in a
hidden field, compared on POST (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from enum import Enum
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "clipline_session"
CSRF_COOKIE = "clipline_csrf"
CSRF_FIELD = "csrf"
_VERSION = "v1"


class Access(Enum):
    OPEN = "open"  # no token configured
    GRANTED = "granted"
    MISSING = "missing"  # no credentials: log in
    EXPIRED = "expired"  # a session cookie whose time is up: log in again


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), b"clipline-web-session", hashlib.sha256).digest()


def _mac(token: str, payload: str) -> str:
    return hmac.new(_key(token), payload.encode(), hashlib.sha256).hexdigest()


def sign(token: str, *, expires_at: float) -> str:
    """The session cookie's value: ``v1.<expiry unix s>.<hmac>``."""
    payload = f"{_VERSION}.{int(expires_at)}"
    return f"{payload}.{_mac(token, payload)}"


def check_cookie(token: str, value: str | None, *, now: float | None = None) -> Access:
    """GRANTED for a cookie this token signed that has not expired; EXPIRED when signed but old."""
    if not value:
        return Access.MISSING
    version, _, rest = value.partition(".")
    expiry, _, mac = rest.partition(".")
    if version != _VERSION or not (expiry.isascii() and expiry.isdigit()):  # "²".isdigit() is true
        return Access.MISSING
    if not hmac.compare_digest(mac.encode(), _mac(token, f"{version}.{expiry}").encode()):
        return Access.MISSING
    return Access.GRANTED if int(expiry) > (time.time() if now is None else now) else Access.EXPIRED


def bearer_ok(token: str, authorization: str | None) -> bool:
    """``Authorization: Bearer <token>``, compared as bytes: a header with any characters is a plain no."""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    given = authorization.removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def login_location(next_url: str, state: Access) -> str:
    """Where a page request without a valid session goes: the login form, then back to ``next_url``."""
    why = "expired" if state is Access.EXPIRED else "needed"
    return f"/login?{urlencode({'next': next_url, 'why': why})}"


def access(request: Request, token: str | None) -> Access:
    """What the request may do on the page: by bearer header, else by session cookie."""
    if not token:
        return Access.OPEN
    if bearer_ok(token, request.headers.get("authorization")):
        return Access.GRANTED
    return check_cookie(token, request.cookies.get(COOKIE))


def cookie_grants(request: Request, token: str) -> bool:
    """For the JSON API's auth: a valid session cookie lets a logged-in page read (GET/HEAD only:
    the player's video, report.json). Writes through the JSON API still need the bearer header."""
    if request.method not in ("GET", "HEAD"):
        return False
    return check_cookie(token, request.cookies.get(COOKIE)) is Access.GRANTED


def token_matches(token: str, given: str) -> bool:
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode())


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def log_in(response: Response, request: Request, token: str, ttl_s: float) -> None:
    response.set_cookie(
        COOKIE,
        sign(token, expires_at=time.time() + ttl_s),
        max_age=int(ttl_s),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )


def log_out(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def csrf_value(request: Request) -> str:
    """The request's CSRF token, or a new one (``ensure_csrf`` puts it in the response's cookie)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def ensure_csrf(response: Response, request: Request, value: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != value:
        response.set_cookie(
            CSRF_COOKIE, value, httponly=True, samesite="strict", secure=_secure(request), path="/"
        )


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and submitted) and hmac.compare_digest(str(cookie).encode(), str(submitted).encode())
