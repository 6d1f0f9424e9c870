"""The job's results over HTTP: ``GET /jobs/{id}/video`` and ``GET /jobs/{id}/poster``.

Served from whichever store holds them (file or S3), behind the API's token,
with single byte ranges (``Range: bytes=a-b``, ``a-``, ``-n``; 206 with
Content-Range, 416 when unsatisfiable), ``If-Range``, ``ETag`` and
``If-None-Match`` (304), and HEAD. A request chooses a job id, never a key:
the key is built from the validated id and the result's fixed name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.params import Depends
from fastapi.responses import Response, StreamingResponse

from pipeline import results
from pipeline.context import Context
from pipeline.storage import ObjectInfo, StorageError, layout

from .api_errors import JOB, ErrorCode, responses

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "Partial content (a byte range)"},
    304: {"description": "Not modified (If-None-Match)"},
    416: {"description": "Range not satisfiable (no body; `Content-Range: bytes */size`)"},
    # errors as every route gives them ({"error": ...}): 404 is `job_not_found`, or `not_found` for a
    # job without this result (yet); 503 `unavailable` also when the store cannot be read
    **responses(*JOB, ErrorCode.NOT_FOUND),
}


def _bounded(digits: str, limit: int) -> int:
    """A decimal of any length as an int no larger than ``limit`` (a hostile header may hold thousands of
    digits, more than ``int()`` converts)."""
    digits = digits.lstrip("0") or "0"
    return limit if len(digits) > len(str(limit)) else min(int(digits), limit)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end) inclusive for one satisfiable range, None to send everything, 'unsatisfiable'."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or another unit: ignored, the whole object is sent (RFC 9110 14.2)
    first, last = m.group(1), m.group(2)
    if first:
        start = _bounded(first, size)
        end = min(_bounded(last, size), size - 1) if last else size - 1
        if last and _bounded(last, size) < start:
            return None  # invalid: ignored
    else:
        suffix = _bounded(last, size)
        if suffix == 0:
            return "unsatisfiable"
        start, end = size - suffix, size - 1
    if start >= size:
        return "unsatisfiable"
    return start, end


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names the current ``etag``: ``*``, or any tag of its list compared
    weakly (RFC 9110 13.1.2: ``W/"x"`` matches ``"x"``)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in {t.removeprefix("W/") for t in tags}


def _headers(info: ObjectInfo, job_id: str, name: str) -> dict[str, str]:
    headers = {
        "ETag": f'"{info.etag}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=60",
        "Content-Disposition": f'inline; filename="{job_id}-{name}"',
    }
    if info.modified is not None:
        headers["Last-Modified"] = info.modified.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return headers


def serve(ctx: Context, job_id: str, name: str, request: Request) -> Response:
    job = ctx.store.get(job_id)  # JobNotFound: 404
    what = "video" if name == layout.FINAL else "poster"
    if not results.available(job)[name]:
        raise HTTPException(404, f"job {job_id} has no {what} (status {job.status})")
    key = results.key(job_id, name)
    try:
        info = ctx.storage.head(key)
        if info is None:
            raise HTTPException(404, f"job {job_id}'s {what} is missing from the store")
        headers = _headers(info, job_id, name)
        ctype = layout.content_type(key)
        if not_modified(request.headers.get("if-none-match"), headers["ETag"]):
            return Response(status_code=304, headers=headers)
        wanted = byte_range(request.headers.get("range"), info.size)
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range != headers["ETag"]:
            wanted = None  # the object changed since the client's first part: send it all
        if wanted == "unsatisfiable":
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{info.size}"})
        status = 200
        start, end = 0, info.size - 1
        if isinstance(wanted, tuple):
            (start, end), status = wanted, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        headers["Content-Length"] = str(end - start + 1)
        if request.method == "HEAD" or info.size == 0:
            return Response(status_code=status, headers=headers, media_type=ctype)
        body = ctx.storage.read_range(key, start, end)
    except StorageError as exc:
        raise HTTPException(503, f"the store could not be read: {exc}") from exc
    return StreamingResponse(body, status_code=status, headers=headers, media_type=ctype)


def _endpoint(ctx: Context, name: str) -> Callable[[str, Request], Response]:
    def endpoint(job_id: str, request: Request) -> Response:
        return serve(ctx, job_id, name, request)

    return endpoint


def media_router(ctx: Context, dependencies: Sequence[Depends]) -> APIRouter:
    """The routes, guarded like the rest of the API (``dependencies``: the token check)."""
    router = APIRouter(dependencies=list(dependencies), tags=["results"])

    for name, route, summary in (
        (layout.FINAL, "video", "The job's final.mp4 (byte ranges, ETag)"),
        (layout.POSTER, "poster", "A frame from the middle of the job's video (JPEG)"),
    ):
        router.add_api_route(
            f"/jobs/{{job_id}}/{route}",
            _endpoint(ctx, name),
            methods=["GET"],
            operation_id=f"get_job_{route}",
            summary=summary,
            response_class=StreamingResponse,
            responses=_RESPONSES,
        )
        router.add_api_route(  # the same answer without its body: a HEAD has its own operation id
            f"/jobs/{{job_id}}/{route}",
            _endpoint(ctx, name),
            methods=["HEAD"],
            operation_id=f"head_job_{route}",
            summary=f"{summary}: headers only",
            response_class=StreamingResponse,
            responses=_RESPONSES,
        )
    return router
