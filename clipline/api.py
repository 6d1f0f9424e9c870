"""``clipline api``: the HTTP face for upstream services. Handlers are thin; pipeline.jobs does the work.

POST /jobs, GET /jobs/{id}, GET /jobs/{id}/report, GET /jobs, POST /jobs/{id}/cancel,
POST /jobs/{id}/retry, GET /stats, GET /healthz, GET /readyz, GET /metrics, and the
OpenAPI document at /openapi.json: every request and answer has a schema there, and every
error has the one shape of ``api_errors`` (a stable ``code``, a ``message``, the ``field``).
When CLIPLINE_API_TOKEN is set every call but health and metrics needs
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from pipeline import job_stats, jobs, results
from pipeline.context import Context
from pipeline.errors import FieldProblem, RequestInvalid
from pipeline.models import JobStatus, RenderRequest
from pipeline.problems import load_json
from pipeline.records import Job, JobDetail, RetriedJob
from pipeline.report import Report
from pipeline.settings import Settings
from pipeline.storage import StorageError

from . import web
from .api_errors import GUARDED, JOB, ApiError, ErrorCode, install, responses
from .api_gate import RequestGate
from .api_media import media_router
from .health import readiness
from .web.session import bearer_ok

EXAMPLE = {
    "job_id": "mix-20261122-0001",
    "output": {"width": 1280, "height": 720, "fps": 30},
    "lines": [
        {
            "text": "第一句歌词",
            "start_ms": 0,
            "end_ms": 3200,
            "clip": {"video_id": "v_91f", "start_ms": 61300, "end_ms": 64500},
        }
    ],
}


class JobList(BaseModel):
    jobs: list[Job] = Field(description="newest first")
    limit: int
    offset: int


class Health(BaseModel):
    status: str = Field(description='"ok"')


class Readiness(BaseModel):
    status: str = Field(description='"ready" or "not ready"')
    down: list[str] = Field(description="what cannot be used: broker, redis, database, ffmpeg, storage")
    checks: dict[str, str] = Field(
        description='each check: "ok" or "down" (the reason is in the API\'s log, never in the answer)'
    )


#: Errors every guarded route may answer: no token, bad parameters, a service down, a bug.
LOCATION = {"Location": {"description": "the job: /jobs/{job_id}", "schema": {"type": "string"}}}


def create_app(settings: Settings) -> FastAPI:
    """The HTTP API over ``settings``' database, Redis and broker, as a FastAPI app.

    Nothing connects at creation: the store, Redis and the broker are opened by the first request
    that needs them. Errors become ``{"error": {"code", "message", "field"}}`` answers with the
    statuses of ``api_errors.ErrorCode`` (422 invalid request listing every field, 404 unknown job,
    409 conflicts, 413 body too large, 401 without the bearer token when one is set, 503 a service
    down).
    """
    app = FastAPI(
        title="clipline",
        version="0.1.0",
        description="Submit lyric-synced render jobs and follow them. Contracts: docs/CONTRACTS.md.",
        docs_url=None,  # no Swagger/ReDoc pages: they run inline script from a public CDN, outside the
        redoc_url=None,  # token; the OpenAPI document itself stays open at /openapi.json
    )
    from actors.metrics import PrometheusObserver
    from actors.sender import Sender

    ctx = Context(settings, observer=PrometheusObserver())  # a cancel through the API counts the job's end
    enqueue = Sender(settings).enqueue_plan
    install(app)

    def authorised(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        token = settings.api_token
        if not token or web.cookie_grants(request, token):  # the web page's login reads (video, report)
            return
        if not bearer_ok(token, authorization):  # compared as bytes: any header value is a 401 at worst
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorised)]
    app.include_router(web.build_router(ctx, enqueue))  # the operations page at / (clipline/web/)
    app.include_router(media_router(ctx, guarded))

    # Credentials before the body, and the body's size however it is sent (clipline/api_gate.py).
    app.add_middleware(RequestGate, token=settings.api_token, max_body_bytes=settings.api_max_body_bytes)

    @app.post(
        "/jobs",
        dependencies=guarded,
        status_code=202,
        summary="Submit a render request",
        response_model=Job,
        responses={
            202: {"description": "Accepted: the job is recorded and queued", "headers": LOCATION},
            200: {"model": Job, "description": "The same job_id and body: that job", "headers": LOCATION},
            **responses(*GUARDED, ErrorCode.JOB_CONFLICT, ErrorCode.BODY_TOO_LARGE),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/RenderRequest"},
                        "example": EXAMPLE,
                    }
                },
            }
        },
    )
    async def submit(request: Request, response: Response) -> Job:
        raw = await request.body()
        try:
            body = load_json(raw)
        except ValueError as exc:  # not JSON, not UTF-8, NaN, nested too deep, an integer too long
            raise RequestInvalid.of([FieldProblem("(body)", f"not valid JSON: {exc}")]) from exc
        done = await run_in_threadpool(jobs.submit, ctx, body, enqueue)
        if not done.created:
            response.status_code = 200  # the same job_id with the same body: the existing job
        response.headers["Location"] = f"/jobs/{done.job.id}"
        return await run_in_threadpool(jobs.describe, ctx, done.job)

    @app.get(
        "/jobs/{job_id}",
        dependencies=guarded,
        summary="A job's status, progress, live clip counts and earlier attempts",
        response_model=JobDetail,
        responses=responses(*JOB),
    )
    def status(job_id: str) -> JobDetail:
        return jobs.detail(ctx, ctx.store.get(job_id))

    @app.get(
        "/jobs/{job_id}/report",
        dependencies=guarded,
        summary="The job's report.json",
        response_model=Report,
        responses=responses(*JOB, ErrorCode.REPORT_NOT_READY, ErrorCode.UNAVAILABLE),
    )
    def report(job_id: str) -> JSONResponse:
        job = ctx.store.get(job_id)
        try:
            report = results.read_report(ctx, job)  # as written, by any release, from the job's store
        except StorageError as exc:  # as the video and poster answer: 503, worth a retry
            raise ApiError(ErrorCode.UNAVAILABLE, f"the store could not be read: {exc}") from exc
        if report is None:
            no_report = f"job {job_id} has no report yet (status {job.status})"
            raise ApiError(ErrorCode.REPORT_NOT_READY, no_report)
        return JSONResponse(report)

    @app.post(
        "/jobs/{job_id}/cancel",
        dependencies=guarded,
        summary="Cancel a job that has not ended",
        response_model=Job,
        responses=responses(*JOB, ErrorCode.JOB_FINISHED),
    )
    def cancel(job_id: str) -> Job:
        return jobs.describe(ctx, jobs.cancel(ctx, job_id))

    @app.post(
        "/jobs/{job_id}/retry",
        dependencies=guarded,
        status_code=202,
        summary="Render again the slots that lack footage (a FAILED or CANCELLED job: all of them)",
        response_model=RetriedJob,
        responses={
            202: {"description": "Accepted: the job's next attempt is queued", "headers": LOCATION},
            **responses(*JOB, ErrorCode.JOB_NOT_RETRYABLE),
        },
    )
    def retry(job_id: str, response: Response) -> RetriedJob:
        done = jobs.retry(ctx, job_id, enqueue)
        response.headers["Location"] = f"/jobs/{job_id}"
        return jobs.retried(ctx, done)

    @app.get(
        "/stats",
        dependencies=guarded,
        summary="Jobs by status, queue depths, success rate, durations",
        response_model=job_stats.JobsSummary,
        responses=responses(*GUARDED),
    )
    def stats(window_hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24.0) -> job_stats.JobsSummary:
        from actors.queues import depths

        return job_stats.summarize(ctx, window_s=window_hours * 3600, queues=depths(settings))

    @app.get(
        "/jobs",
        dependencies=guarded,
        summary="Jobs, newest first; filtered by status and/or mix_request_id",
        response_model=JobList,
        responses=responses(*GUARDED),
    )
    def list_jobs(
        status: JobStatus | None = None,
        mix_request_id: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> JobList:
        found = ctx.store.list(status=status, mix_request_id=mix_request_id, limit=limit, offset=offset)
        return JobList(jobs=[jobs.describe(ctx, j) for j in found], limit=limit, offset=offset)

    @app.get("/healthz", summary="The API process is up", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        summary="Broker, Redis, database, ffmpeg and storage usable",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "something is down: `down` names it"}},
    )
    def readyz() -> JSONResponse:
        checks = readiness(ctx)
        down = [k for k, v in checks.items() if v != "ok"]
        body = {"status": "ready" if not down else "not ready", "down": down, "checks": checks}
        return JSONResponse(body, status_code=503 if down else 200)

    @app.get(
        "/metrics",
        summary="Prometheus metrics of the API process",
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        """FastAPI's document, plus the request's schema (the body is validated by parse_request, which
        lists every problem, so FastAPI does not parse it itself)."""
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema = RenderRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = doc.setdefault("components", {}).setdefault("schemas", {})
            components.update(schema.pop("$defs", {}))
            components["RenderRequest"] = schema
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def serve(settings: Settings, host: str, port: int) -> int:
    """Serve until stopped; PortInUse (exit 2, naming the port) when the port cannot be bound."""
    import uvicorn

    _check_port(host, port)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    return 0


def _check_port(host: str, port: int) -> None:
    """PortInUse when ``host:port`` cannot be bound; uvicorn would log it and exit 3, which the exit-code
    table reads as "infrastructure unavailable"."""
    import errno
    import socket

    from .exits import PortInUse

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # bound and released at once, with the option uvicorn binds with (a port in TIME_WAIT is free)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        why = "already in use" if exc.errno == errno.EADDRINUSE else "not allowed to this user"
        raise PortInUse(f"port {port} on {host} is {why}: give `clipline api` another --port") from exc
