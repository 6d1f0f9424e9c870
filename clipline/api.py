"""``clipline api``: the HTTP face for upstream services. Handlers are thin; pipeline.jobs does the work.

POST /jobs, GET /jobs/{id}, GET /jobs/{id}/report, GET /jobs, POST /jobs/{id}/cancel,
POST /jobs/{id}/retry, GET /stats, GET /healthz, GET /readyz, GET /metrics, and the
OpenAPI document at /openapi.json.
When CLIPLINE_API_TOKEN is set every call but health and metrics needs
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline import job_stats, jobs, results
from pipeline.context import Context
from pipeline.errors import JobConflict, JobNotFound, JobStateConflict, RequestInvalid
from pipeline.models import ClipOutcome, JobStatus
from pipeline.settings import Settings

from . import web
from .api_media import media_router
from .health import readiness

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


def job_view(job: Any, ctx: Context) -> dict[str, Any]:
    """The status object of the CLI plus clip counts by outcome."""
    obj = jobs.status_object(job, ctx)
    stats = obj.get("clip_stats") or {}
    obj["clips"] = {
        k: stats.get(k) for k in ("total", *(o.public_name for o in ClipOutcome))
    }
    return obj


def create_app(settings: Settings) -> FastAPI:
    """The HTTP API over ``settings``' database, Redis and broker, as a FastAPI app.

    Nothing connects at creation: the store, Redis and the broker are opened by the first request
    that needs them. Errors become JSON answers (422 invalid request naming the field, 404 unknown
    job, 409 conflicts, 413 body too large, 401 without the bearer token when one is set).
    """
    app = FastAPI(
        title="clipline",
        version="0.1.0",
        description="Submit lyric-synced render jobs and follow them. Contracts: DESIGN.md.",
    )
    from actors.sender import Sender

    ctx = Context(settings)
    enqueue = Sender(settings).enqueue_plan

    def authorised(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        token = settings.api_token
        if not token or web.cookie_grants(request, token):  # the web page's login reads (video, report)
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not (authorization or "").startswith("Bearer ") or not hmac.compare_digest(given, token):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorised)]
    app.include_router(web.build_router(ctx, enqueue))  # the operations page at / (clipline/web/)
    app.include_router(media_router(ctx, guarded))

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.api_max_body_bytes:
            return JSONResponse({"detail": f"body over {settings.api_max_body_bytes} bytes"}, status_code=413)
        response: Response = await call_next(request)
        return response

    @app.exception_handler(RequestInvalid)
    async def invalid(_: Request, exc: RequestInvalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)

    @app.exception_handler(JobNotFound)
    async def not_found(_: Request, exc: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(JobStateConflict)
    async def state_conflict(_: Request, exc: JobStateConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(JobConflict)
    async def conflict(_: Request, exc: JobConflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.post("/jobs", dependencies=guarded, status_code=202, summary="Submit a render request")
    def submit(
        request: Annotated[dict[str, Any], Body(examples=[EXAMPLE])], response: Response
    ) -> dict[str, Any]:
        done = jobs.submit(ctx, request, enqueue)
        if not done.created:
            response.status_code = 200  # the same job_id with the same body: the existing job
        return job_view(done.job, ctx)

    @app.get("/jobs/{job_id}", dependencies=guarded, summary="A job's status, progress and clip counts")
    def status(job_id: str) -> dict[str, Any]:
        view = job_view(ctx.store.get(job_id), ctx)
        view["previous_attempts"] = [a.as_dict() for a in ctx.store.history(job_id)]
        return view

    @app.get("/jobs/{job_id}/report", dependencies=guarded, summary="The job's report.json")
    def report(job_id: str) -> Any:
        job = ctx.store.get(job_id)
        report = results.read_report(ctx, job)
        if report is None:
            raise HTTPException(404, f"job {job_id} has no report yet (status {job.status})")
        return report

    @app.post("/jobs/{job_id}/cancel", dependencies=guarded, summary="Cancel a job that has not ended")
    def cancel(job_id: str) -> dict[str, Any]:
        return job_view(jobs.cancel(ctx, job_id), ctx)

    @app.post(
        "/jobs/{job_id}/retry",
        dependencies=guarded,
        status_code=202,
        summary="Render again the slots that lack footage (a FAILED or CANCELLED job: all of them)",
    )
    def retry(job_id: str) -> dict[str, Any]:
        done = jobs.retry(ctx, job_id, enqueue)
        return dict(job_view(done.job, ctx), retried_slots=done.slots)

    @app.get("/stats", dependencies=guarded, summary="Jobs by status, queue depths, success rate, durations")
    def stats(window_hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24.0) -> dict[str, Any]:
        from actors.queues import depths

        return job_stats.summarize(ctx, window_s=window_hours * 3600, queues=depths(settings))

    @app.get("/jobs", dependencies=guarded, summary="Jobs, newest first")
    def list_jobs(
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        found = ctx.store.list(status=status, limit=limit, offset=offset)
        return {"jobs": [job_view(j, ctx) for j in found], "limit": limit, "offset": offset}

    @app.get("/healthz", summary="The API process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Broker, Redis, database and ffmpeg reachable")
    def readyz() -> JSONResponse:
        checks = readiness(ctx)
        down = [k for k, v in checks.items() if v != "ok"]
        body = {"status": "ready" if not down else "not ready", "down": down, "checks": checks}
        return JSONResponse(body, status_code=503 if down else 200)

    @app.get("/metrics", summary="Prometheus metrics of the API process")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    return 0
