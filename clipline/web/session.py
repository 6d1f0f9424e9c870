"""Who may see the page: the login cookie, the bearer header, and the forms' CSRF token.

With ``CLIPLINE_API_TOKEN`` unset everything is open, as the JSON API is. With it set, a person logs
in with the token once: the answer is an HttpOnly, SameSite=Strict cookie holding an expiry and an
HMAC of it keyed by the token (changing the token ends every session), and a random session id.
Logging out revokes that id on the server (``Revocations``: in Redis until the cookie's expiry, and in
this process), so a copy of the cookie stops working too. An expired, revoked or forged cookie sends
the person to the login page. ``Authorization: Bearer <token>`` works as well (scripts).

Every form carries a CSRF token: a random value in its own SameSite=Strict cookie, repeated in a
hidden field, compared on POST (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from enum import Enum
from urllib.parse import urlencode

import redis
import structlog
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "clipline_session"
CSRF_COOKIE = "clipline_csrf"
CSRF_FIELD = "csrf"
_VERSION = "v2"
_REVOKED_KEY = "clipline:web:revoked:"

log = structlog.get_logger("clipline.web")


class Access(Enum):
    OPEN = "open"  # no token configured
    GRANTED = "granted"
    MISSING = "missing"  # no credentials: log in
    EXPIRED = "expired"  # a session cookie whose time is up: log in again


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), b"clipline-web-session", hashlib.sha256).digest()


def _mac(token: str, payload: str) -> str:
    return hmac.new(_key(token), payload.encode(), hashlib.sha256).hexdigest()


def sign(token: str, *, expires_at: float, sid: str | None = None) -> str:
    """The session cookie's value: ``v2.<session id>.<expiry unix s>.<hmac>``."""
    sid = sid or secrets.token_urlsafe(16)
    payload = f"{_VERSION}.{sid}.{int(expires_at)}"
    return f"{payload}.{_mac(token, payload)}"


def _parts(token: str, value: str | None) -> tuple[str, int] | None:
    """(session id, expiry) of a cookie this token signed, else None."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 4:
        return None
    version, sid, expiry, mac = parts
    if version != _VERSION or not sid or not (expiry.isascii() and expiry.isdigit()):  # "²".isdigit()
        return None
    if not hmac.compare_digest(mac.encode(), _mac(token, f"{version}.{sid}.{expiry}").encode()):
        return None
    return sid, int(expiry)


class Revocations:
    """Session ids ended by "Log out", until their cookie would have expired anyway.

    Kept in Redis (every API process sees them) and in this process's memory (a logout while Redis
    cannot be reached still ends the session here; it is logged). A check that cannot reach Redis
    answers from memory only: the page stays usable while Redis is down (SECURITY.md)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, float] = {}  # sid -> expiry
        self._redis: redis.Redis | None = None

    def use(self, redis_url: str | None) -> None:
        client = None
        if redis_url:
            client = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        with self._lock:
            self._redis = client

    def revoke(self, sid: str, expires_at: float) -> bool:
        """Record ``sid`` as ended; False when Redis could not be told (ended in this process only)."""
        now = time.time()
        with self._lock:
            self._local = {k: e for k, e in self._local.items() if e > now}
            self._local[sid] = expires_at
            client = self._redis
        ttl = int(expires_at - now) + 1
        if client is None or ttl <= 0:
            return client is not None
        try:
            client.set(_REVOKED_KEY + sid, b"1", ex=ttl)
        except redis.RedisError as exc:
            log.warning("web.logout_not_shared", error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    def revoked(self, sid: str) -> bool:
        with self._lock:
            if sid in self._local:
                return True
            client = self._redis
        if client is None:
            return False
        try:
            return bool(client.exists(_REVOKED_KEY + sid))
        except redis.RedisError as exc:
            log.warning("web.revocation_unchecked", error=f"{type(exc).__name__}: {exc}")
            return False


#: The process's revocations (build_router points them at the app's Redis).
REVOCATIONS = Revocations()


def check_cookie(token: str, value: str | None, *, now: float | None = None) -> Access:
    """GRANTED for a cookie this token signed that has not expired nor been logged out; EXPIRED when
    signed but old or logged out (log in again)."""
    found = _parts(token, value)
    if found is None:
        return Access.MISSING
    sid, expiry = found
    if expiry <= (time.time() if now is None else now):
        return Access.EXPIRED
    return Access.EXPIRED if REVOCATIONS.revoked(sid) else Access.GRANTED


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


def come_back_to(request: Request) -> str:
    """The page to return to after logging in: the request's own page for a GET; for a form's POST the
    page the form belongs to (a job's page for its Cancel or Retry), never a path only POST serves."""
    path = request.url.path
    if request.method in ("GET", "HEAD"):
        return path + (f"?{request.url.query}" if request.url.query else "")
    if path == "/ui/submit":
        return path
    parts = path.split("/")  # "", "ui", "jobs", id, action
    if len(parts) == 5 and parts[1:3] == ["ui", "jobs"] and parts[3]:
        return "/".join(parts[:4])
    return "/"


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


def log_out(response: Response, request: Request, token: str | None) -> bool:
    """Delete the browser's cookie and end its session on the server (a copy of it stops working).
    False when the logout could not be shared through Redis (it holds in this process only)."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    found = _parts(token, request.cookies.get(COOKIE)) if token else None
    return REVOCATIONS.revoke(*found) if found is not None else True


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
