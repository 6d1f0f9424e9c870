"""Turning templates into responses: one Jinja2 environment with autoescaping on for every template,
the helpers the templates share, and the headers every page carries (CSP without inline script).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from . import i18n, session
from .job_page import ICONS, STATES, clock


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("clipline.web", "templates"),
        autoescape=True,  # every template, whatever its name: job data is user text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(icons=ICONS, states=STATES, clock=clock, when=when, took=took, href=href)
    return env


def when(dt: datetime | None) -> str:
    """A timestamp as people read it, in UTC with the zone named."""
    if dt is None:
        return "—"
    aware = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def took(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def href(path: str, params: dict[str, Any] | None = None) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def language(request: Request) -> str:
    return i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def safe_next(value: str | None) -> str:
    """A place on this site to go back to: a path, never another host (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def page(
    request: Request,
    name: str,
    *,
    status_code: int = 200,
    logged_in: bool = False,
    media: tuple[str | None, ...] = (),
    **values: Any,
) -> HTMLResponse:
    """Render ``name`` in the request's language, with a CSRF token and the page's security headers.

    ``media``: URLs the page plays or shows (a presigned video elsewhere), allowed by the CSP.
    """
    lang = language(request)
    labels = i18n.table(lang)

    def t(key: str, **fill: Any) -> str:
        return labels[key].format(**fill) if fill else labels[key]

    csrf = session.csrf_value(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = (
        environment()
        .get_template(name)
        .render(
            t=t,
            lang=lang,
            html_lang=i18n.HTML_LANG[lang],
            csrf=csrf,
            csrf_field=session.CSRF_FIELD,
            logged_in=logged_in,
            here=here,
            **values,
        )
    )
    response = HTMLResponse(html, status_code=status_code)
    session.ensure_csrf(response, request, csrf)
    sources = " ".join(sorted({o for o in map(_origin, media) if o}))
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: "
        f"{sources}; media-src 'self' {sources}; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ).replace("  ", " ")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept-Language, Cookie, Authorization"
    return response


def is_page(request: Request) -> bool:
    """Whether the request is for the operations page (answered in HTML), not the JSON API."""
    path = request.url.path
    return (path == "/" or path.startswith("/ui/")) and not path.startswith("/ui/static/")


def error_page(request: Request, status_code: int, kind: str, **fill: str) -> HTMLResponse:
    """The page's own answer to a fault (``kind``: ``unavailable``, ``internal``), in the page's language,
    where the JSON API answers its error body."""
    return page(request, "error.html", status_code=status_code, kind=kind, status=status_code, fill=fill)
