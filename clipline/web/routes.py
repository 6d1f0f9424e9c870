"""The operations page's routes: an APIRouter that ``clipline api`` includes (``/`` and ``/ui/...``).

Handlers stay short: job_list, job_page and submit gather the data, render.page renders it. Every
page needs the API token when one is set (login cookie or bearer header); every form POST needs
the CSRF token. Job actions call the same service functions as the JSON API.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pipeline import jobs
from pipeline.context import Context
from pipeline.errors import JobNotFound, JobStateConflict
from pipeline.models import JobStatus

from . import i18n, job_list, job_page, session
from .render import language, page, safe_next
from .submit import Problem, decode, submit_text

_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
_DONE = {"cancelled": "job.done.cancelled", "retried": "job.done.retried"}


def build_router(ctx: Context, enqueue: jobs.Enqueue) -> APIRouter:
    settings = ctx.settings
    token = settings.api_token
    r = APIRouter(include_in_schema=False)
    session.REVOCATIONS.use(settings.redis_url if token else None)  # "Log out" ends sessions server-side

    def gate(request: Request) -> Response | None:
        """None when the request may see the page; else the way to the login page."""
        state = session.access(request, token)
        if state in (session.Access.OPEN, session.Access.GRANTED):
            return None
        return RedirectResponse(session.login_location(session.come_back_to(request), state), status_code=303)

    def logged_in() -> bool:
        return bool(token)

    def not_found(request: Request, job_id: str) -> HTMLResponse:
        return page(request, "notfound.html", status_code=404, logged_in=logged_in(), job_id=job_id)

    @r.get("/", response_class=HTMLResponse)
    def jobs_list(
        request: Request,
        status: str | None = None,
        q: str = "",
        page_no: Annotated[str, Query(alias="page")] = "1",
    ) -> Response:
        """Odd query values (a bookmark, a typed URL) are clamped, never refused: page 0 or "x" is page 1,
        past the last page is the last page, a search is cut to 128 characters (job_list.load)."""
        if (redirect := gate(request)) is not None:
            return redirect
        page_n = job_list.parse_page(page_no)
        lp = job_list.load(ctx, status=job_list.parse_status(status), query=q, page=page_n)
        return page(
            request,
            "jobs.html",
            logged_in=logged_in(),
            lp=lp,
            statuses=list(JobStatus),
            page_href=lambda n: f"/?{urlencode(job_list.query_string(lp, n))}",
        )

    @r.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/", why: str = "") -> Response:
        if not token:
            return RedirectResponse(safe_next(next), status_code=303)
        return page(request, "login.html", next=safe_next(next), why=why, wrong=False)

    @r.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        token_given: Annotated[str, Form(alias="token")] = "",
        next: Annotated[str, Form()] = "/",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        if not token:
            return RedirectResponse(safe_next(next), status_code=303)
        if not session.csrf_ok(request, csrf):
            return page(request, "login.html", status_code=403, next=safe_next(next), why="csrf", wrong=False)
        if not session.token_matches(token, token_given):
            return page(request, "login.html", status_code=401, next=safe_next(next), why="", wrong=True)
        response = RedirectResponse(safe_next(next), status_code=303)
        session.log_in(response, request, token, settings.web_session_ttl_s)
        return response

    @r.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        response = RedirectResponse("/login" if token else "/", status_code=303)
        if session.csrf_ok(request, csrf):
            session.log_out(response, request, token)
        return response

    @r.get("/ui/lang/{lang}")
    def choose_language(lang: str, next: str = "/") -> Response:
        response = RedirectResponse(safe_next(next), status_code=303)
        if lang in i18n.LANGS:
            response.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", path="/")
        return response

    @r.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
    def job(request: Request, job_id: str, done: str = "") -> Response:
        if (redirect := gate(request)) is not None:
            return redirect
        try:
            jp = job_page.load(ctx, job_id)
        except JobNotFound:
            return not_found(request, job_id)
        return _job(request, jp, logged_in(), notice=_DONE.get(done))

    @r.get("/ui/jobs/{job_id}/live", response_class=HTMLResponse)
    def job_live(request: Request, job_id: str) -> Response:
        """The job page's changing part, for the page's poll (401: the session ended, log in again)."""
        state = session.access(request, token)
        if state not in (session.Access.OPEN, session.Access.GRANTED):
            return Response(state.value, status_code=401, media_type="text/plain")
        try:
            jp = job_page.load(ctx, job_id)
        except JobNotFound:
            return Response("no such job", status_code=404, media_type="text/plain")
        return page(request, "job_live.html", jp=jp, media=(jp.video_url, jp.poster_url))

    @r.post("/ui/jobs/{job_id}/{action}", response_class=HTMLResponse)
    def job_action(
        request: Request,
        job_id: str,
        action: str,
        csrf: Annotated[str, Form()] = "",
        confirmed: Annotated[str, Form()] = "",
    ) -> Response:
        if (redirect := gate(request)) is not None:
            return redirect
        try:
            jp = job_page.load(ctx, job_id)
        except JobNotFound:
            return not_found(request, job_id)
        if action not in ("cancel", "retry"):
            return page(request, "notfound.html", status_code=404, logged_in=logged_in(), job_id=None)
        if not session.csrf_ok(request, csrf):
            return _job(request, jp, logged_in(), error_key="csrf", status_code=403)
        if confirmed != "yes":  # no script ran the confirm dialog: ask on a page of its own
            return page(request, "confirm.html", logged_in=logged_in(), job_id=job_id, action=action)
        try:
            if action == "cancel":
                jobs.cancel(ctx, job_id)
            else:
                jobs.retry(ctx, job_id, enqueue)
        except JobStateConflict as exc:
            return _job(
                request,
                job_page.load(ctx, job_id),
                logged_in(),
                error_key=f"job.refused.{action}",  # in the page's language; the service's words follow
                error=str(exc),
                status_code=409,
            )
        done = "cancelled" if action == "cancel" else "retried"
        return RedirectResponse(f"/ui/jobs/{job_id}?done={done}", status_code=303)

    @r.get("/ui/submit", response_class=HTMLResponse)
    def submit_form(request: Request) -> Response:
        if (redirect := gate(request)) is not None:
            return redirect
        return page(request, "submit.html", logged_in=logged_in(), text="", problems=[], limit=_limit())

    @r.post("/ui/submit", response_class=HTMLResponse)
    async def submit(
        request: Request,
        text: Annotated[str, Form(alias="request")] = "",
        upload: Annotated[UploadFile | None, File()] = None,
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        if (redirect := gate(request)) is not None:
            return redirect
        if upload is not None and upload.filename:
            text = decode(await upload.read(_limit() + 1))
        if not session.csrf_ok(request, csrf):
            return _submit_page(request, text, [_problem(request, "csrf")], logged_in(), 403)
        labels = {k: _t(request, f"submit.{k}") for k in ("empty", "big", "json")}
        out = submit_text(ctx, text, enqueue, labels=labels)
        if out.job_id is not None:
            return RedirectResponse(f"/ui/jobs/{out.job_id}", status_code=303)
        return _submit_page(request, out.text, out.problems, logged_in(), 422)

    @r.get("/ui/static/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        body = resources.files("clipline.web").joinpath("static", name).read_bytes()
        return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=300"})

    @r.get("/ui/{rest:path}", response_class=HTMLResponse)
    def unknown(request: Request, rest: str) -> Response:
        """Any other page under /ui/: the page's own 404 (the JSON API keeps its JSON 404s)."""
        return page(request, "notfound.html", status_code=404, logged_in=logged_in(), job_id=None)

    def _limit() -> int:
        return settings.api_max_body_bytes

    def _submit_page(
        request: Request, text: str, problems: list[Problem], logged: bool, code: int
    ) -> Response:
        return page(
            request,
            "submit.html",
            status_code=code,
            logged_in=logged,
            text=text,
            problems=problems,
            limit=_limit(),
        )

    return r


def _job(
    request: Request,
    jp: job_page.JobPage,
    logged_in: bool,
    *,
    notice: str | None = None,
    error: str | None = None,
    error_key: str | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "job.html",
        status_code=status_code,
        logged_in=logged_in,
        jp=jp,
        notice=notice,
        error=error,
        error_key=error_key,
        media=(jp.video_url, jp.poster_url),
    )


def _t(request: Request, key: str) -> str:
    return i18n.text(language(request), key)


def _problem(request: Request, key: str) -> Problem:
    return Problem(_t(request, key))
