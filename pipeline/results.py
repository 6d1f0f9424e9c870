"""A job's results in the store: final.mp4, report.json, poster.jpg; where people fetch them.

``urls`` gives ``output_url``, ``report_url`` and ``poster_url`` for the status
object, ``clipline status --json`` and callbacks: presigned URLs that live
CLIPLINE_S3_URL_TTL_S with S3, the API's routes (under CLIPLINE_API_PUBLIC_URL)
with the file backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import Context
from .storage import layout
from .store import RenderJob

#: The status object's URL fields and the result each one points at.
URL_FIELDS = {"output_url": layout.FINAL, "report_url": layout.REPORT, "poster_url": layout.POSTER}
#: The API route of each result (file backend).
API_ROUTES = {layout.FINAL: "video", layout.REPORT: "report", layout.POSTER: "poster"}


def key(job_id: str, name: str) -> str:
    return layout.output(job_id, name)


def publish(ctx: Context, job_id: str, name: str, path: Path) -> str:
    """Publish a finished local file as one of the job's results; returns where it is."""
    k = key(job_id, name)
    ctx.storage.put_file(k, path)
    return ctx.storage.uri(k)


def local_target(ctx: Context, job_id: str, name: str) -> Path:
    """Where to write a result on this host: its final place with a file backend, else the scratch dir."""
    path = ctx.storage.local_path(key(job_id, name))
    if path is None:
        path = ctx.settings.work_dir / job_id / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def has_poster(job: RenderJob) -> bool:
    return bool(((job.metrics or {}).get("render") or {}).get("poster"))


def available(job: RenderJob) -> dict[str, bool]:
    """Which results the job has (from its record: no request to the store)."""
    return {
        layout.FINAL: bool(job.output_path),
        layout.REPORT: bool(job.report_path),
        layout.POSTER: bool(job.output_path) and has_poster(job),
    }


@dataclass(frozen=True)
class Urls:
    """Where people download a job's results (None for a result the job does not have)."""

    output_url: str | None
    report_url: str | None
    poster_url: str | None


def urls(ctx: Context, job: RenderJob) -> Urls:
    """output_url / report_url / poster_url: presigned with S3, the API's routes with files."""
    have = available(job)
    out: dict[str, str | None] = {}
    base = ctx.settings.api_public_url.rstrip("/")
    for field, name in URL_FIELDS.items():
        if not have[name]:
            out[field] = None
            continue
        signed = ctx.storage.presigned_url(key(job.id, name), ctx.settings.s3_url_ttl_s)
        out[field] = signed or f"{base}/jobs/{job.id}/{API_ROUTES[name]}"
    return Urls(**out)


def read_report(ctx: Context, job: RenderJob) -> dict[str, Any] | None:
    """The job's report.json, or None when it has none (yet)."""
    if not job.report_path:
        return None
    raw = ctx.storage.get_bytes(key(job.id, layout.REPORT))
    try:
        data = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def attempt_uri(ctx: Context, job_id: str, name: str, attempt: int) -> str:
    """Where ``keep_attempt`` keeps an attempt's result."""
    return ctx.storage.uri(key(job_id, layout.attempt_name(name, attempt)))


def keep_attempt(ctx: Context, job_id: str, attempt: int) -> dict[str, str | None]:
    """Before a retry: final.mp4 / report.json become final.attempt-N.mp4 / report.attempt-N.json
    (the poster is dropped). Returns where each kept result is now (None: there was none)."""
    kept: dict[str, str | None] = {}
    for name in (layout.REPORT, layout.FINAL):
        src, dst = key(job_id, name), key(job_id, layout.attempt_name(name, attempt))
        kept[name] = ctx.storage.uri(dst) if ctx.storage.copy(src, dst) else None
        ctx.storage.delete(src)
    ctx.storage.delete(key(job_id, layout.POSTER))
    return kept


def remove(ctx: Context, job_id: str) -> int:
    """Every result of the job (every attempt's); returns how many objects."""
    return ctx.storage.delete_prefix(layout.job_output(job_id))
