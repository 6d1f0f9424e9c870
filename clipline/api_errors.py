"""One error shape for every answer of the HTTP API that is not a success, FastAPI's own included.

    {"error": {"code": "request_invalid", "message": "...", "field": "lines[3].clip.hls_url",
               "problems": [{"field": "...", "message": "..."}, ...]}}

``code`` is stable (clients branch on it, never on ``message``); ``field``
names where a request went wrong (the first of ``problems``, which lists every
problem of an invalid request). The codes and their HTTP statuses are the
``ErrorCode`` table below (README, "Over HTTP").
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import redis
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from pipeline.errors import (
    ClipLineError,
    FieldProblem,
    JobConflict,
    JobFinished,
    JobNotFound,
    JobNotRetryable,
    JobStateConflict,
    RequestInvalid,
    ServiceUnavailable,
)
from pipeline.problems import field_path

from .web import i18n
from .web.render import error_page, is_page, language

log = structlog.get_logger("clipline.api")


class ErrorCode(StrEnum):
    """Stable error codes, each with its one HTTP status (``STATUS``)."""

    REQUEST_INVALID = "request_invalid"  # 422: the request (body, path or query) failed validation
    JOB_CONFLICT = "job_conflict"  # 409: the job_id exists with a different request body
    JOB_NOT_FOUND = "job_not_found"  # 404: no job has this id
    JOB_FINISHED = "job_finished"  # 409: cancel of a job that already ended
    JOB_NOT_RETRYABLE = "job_not_retryable"  # 409: retry of a running job, or of a COMPLETED one
    REPORT_NOT_READY = "report_not_ready"  # 404: the job has no report.json yet
    UNAUTHORIZED = "unauthorized"  # 401: no or wrong bearer token
    BODY_TOO_LARGE = "body_too_large"  # 413: over CLIPLINE_API_MAX_BODY_BYTES
    NOT_FOUND = "not_found"  # 404: no such path
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    UNAVAILABLE = "unavailable"  # 503: the broker, Redis or the database cannot be reached
    INTERNAL_ERROR = "internal_error"  # 500: a bug; the log has the traceback


STATUS = {
    ErrorCode.REQUEST_INVALID: 422,
    ErrorCode.JOB_CONFLICT: 409,
    ErrorCode.JOB_NOT_FOUND: 404,
    ErrorCode.JOB_FINISHED: 409,
    ErrorCode.JOB_NOT_RETRYABLE: 409,
    ErrorCode.REPORT_NOT_READY: 404,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}

#: The code of an HTTPException raised by FastAPI, Starlette or our own dependencies, by status.
_BY_STATUS = {401: ErrorCode.UNAUTHORIZED, 404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}
_BY_STATUS |= {413: ErrorCode.BODY_TOO_LARGE, 422: ErrorCode.REQUEST_INVALID, 503: ErrorCode.UNAVAILABLE}


class Problem(BaseModel):
    field: str = Field(description="where: lines[3].clip.hls_url, or (body) for the whole request")
    message: str


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    field: str | None = Field(description="the first problem's field, when the error is about one")
    problems: list[Problem] | None = Field(default=None, description="every problem of an invalid request")


class ErrorBody(BaseModel):
    """What every error answer holds."""

    error: ErrorDetail


class ApiError(Exception):
    """An error answer raised by a route: ``raise ApiError(ErrorCode.REPORT_NOT_READY, "...")``."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def error_response(
    code: ErrorCode,
    message: str,
    *,
    field: str | None = None,
    problems: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(
        code=code,
        message=message,
        field=field,
        problems=[Problem(field=p.field, message=p.message) for p in problems] if problems else None,
    )
    body = ErrorBody(error=detail).model_dump(mode="json", exclude_none=True)
    body["error"].setdefault("field", None)
    return JSONResponse(body, status_code=STATUS[code], headers=headers)


#: The errors every route behind the token can answer; and every route about one job.
GUARDED = (ErrorCode.UNAUTHORIZED, ErrorCode.REQUEST_INVALID, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL_ERROR)
JOB = (*GUARDED, ErrorCode.JOB_NOT_FOUND)


def responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of a route's possible errors."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in dict.fromkeys(codes):  # each code once, in order: a route may name one its group holds
        entry = out.setdefault(STATUS[code], {"model": ErrorBody, "description": ""})
        entry["description"] = " or ".join(filter(None, [entry["description"], f"`{code.value}`"]))
    return out


_DOMAIN: list[tuple[type[ClipLineError], ErrorCode]] = [
    (JobConflict, ErrorCode.JOB_CONFLICT),
    (JobNotFound, ErrorCode.JOB_NOT_FOUND),
    (JobFinished, ErrorCode.JOB_FINISHED),
    (JobNotRetryable, ErrorCode.JOB_NOT_RETRYABLE),
    (JobStateConflict, ErrorCode.JOB_NOT_RETRYABLE),
    (ServiceUnavailable, ErrorCode.UNAVAILABLE),
]


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    @app.exception_handler(RequestInvalid)
    async def invalid(_: Request, exc: RequestInvalid) -> JSONResponse:
        return _invalid(exc)

    @app.exception_handler(ClipLineError)
    async def domain(_: Request, exc: ClipLineError) -> JSONResponse:
        code = next((c for kind, c in _DOMAIN if isinstance(exc, kind)), None)
        if code is None:
            log.error("api.unhandled", error=f"{type(exc).__name__}: {exc}")
            return error_response(ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        return error_response(code, str(exc))

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.code, exc.message, field=exc.field)

    @app.exception_handler(RequestValidationError)
    async def fastapi_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = [FieldProblem(_where(tuple(e.get("loc", ()))), str(e.get("msg", ""))) for e in exc.errors()]
        return _invalid(RequestInvalid.of(found or [FieldProblem("(request)", "invalid request")]))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = _BY_STATUS.get(exc.status_code, ErrorCode.INTERNAL_ERROR)
        return error_response(code, str(exc.detail), headers=getattr(exc, "headers", None))

    from actors.queues import BROKER_ERRORS

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("api.unavailable", error=f"{type(exc).__name__}: {exc}")
        service = "redis" if isinstance(exc, redis.RedisError) else "database"
        if isinstance(exc, BROKER_ERRORS):  # a submit is recorded before it is sent: sending it again is safe
            service = "broker"
        if is_page(request):  # the operations page answers a page, in its language (the service's name too)
            named = i18n.text(language(request), f"service.{service}")
            return error_page(request, 503, "unavailable", what=named)
        what = i18n.text("en", f"service.{service}")
        return error_response(ErrorCode.UNAVAILABLE, f"{what} cannot be reached; try again shortly")

    for kind in (redis.RedisError, OperationalError, *BROKER_ERRORS):
        app.add_exception_handler(kind, unavailable)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.error("api.unhandled", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        if is_page(request):
            return error_page(request, 500, "internal")
        return error_response(ErrorCode.INTERNAL_ERROR, "internal error; the API's log has the details")


def _invalid(exc: RequestInvalid) -> JSONResponse:
    return error_response(ErrorCode.REQUEST_INVALID, str(exc), field=exc.field or None, problems=exc.problems)


def _where(loc: tuple[Any, ...]) -> str:
    """FastAPI's ``("query", "limit")`` -> ``limit``; ``("body", "lines", 0)`` -> ``lines[0]``."""
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        return field_path(loc[1:]) if len(loc) > 1 else "(body)" if loc[0] == "body" else str(loc[0])
    return field_path(loc)
