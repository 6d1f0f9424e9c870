"""The job status object and its parts, as typed records: what ``status --json``, ``GET /jobs/{id}`` and
the callbacks are made of. Pure; built by ``jobs.describe``.

Every timestamp is a UTC ``datetime``, written as ISO 8601 with its zone
(``2026-11-22T08:15:02.123456Z``), whatever the database hands back (SQLite
returns naive datetimes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from .clip_stats import ClipCounts, ClipStats
from .models import SCHEMA_VERSION, JobStatus, Quality


def as_utc(value: datetime) -> datetime:
    """A naive datetime is UTC (that is how the store writes them); an aware one is moved to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def iso(value: datetime | None) -> str | None:
    """The one way clipline writes a timestamp outside a model: ISO 8601, UTC, ``Z``."""
    return None if value is None else as_utc(value).isoformat().replace("+00:00", "Z")


class Attempt(BaseModel):
    """An earlier attempt of a job that was retried, and where its outputs were kept."""

    attempt: int = Field(ge=1)
    status: JobStatus
    finished_at: UtcDatetime | None
    report_path: str | None
    output_path: str | None
    clip_stats: ClipStats | None
    error: str | None


class Job(BaseModel):
    """A job's status object (DESIGN.md): the same in ``status --json``, ``submit --json`` and the API."""

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    mix_request_id: str | None
    trace_id: str
    status: JobStatus
    progress: int = Field(ge=0, le=100, description="0-100, never goes backwards within an attempt")
    attempt: int = Field(ge=1, description="1 for the first attempt, +1 per retry")
    output_path: str | None = Field(description="where final.mp4 is on the workers' side (path or s3:// URI)")
    report_path: str | None
    quality: Quality = Field(
        default="final",
        description='the request\'s output.quality: "draft" renders at a quarter of the pixels',
    )
    output_url: str | None = Field(
        description="where to download final.mp4: a presigned URL (S3 store, lives CLIPLINE_S3_URL_TTL_S) or "
        "the API's /jobs/{id}/video under CLIPLINE_API_PUBLIC_URL; null until the job has a video"
    )
    report_url: str | None = Field(description="where to download report.json (as output_url)")
    poster_url: str | None = Field(description="a frame from the middle of the video, JPEG (as output_url)")
    error: str | None = Field(description="the last error of the current attempt")
    clips: ClipCounts | None = Field(
        description="clips by outcome: live from Redis while the job runs, from clip_stats once it ended; "
        "null when Redis cannot be reached"
    )
    eta_s: float | None = Field(
        description="estimated seconds until every clip has an outcome, from the rate so far; set while the "
        "job is EXTRACTING and a few clips are done"
    )
    clip_stats: ClipStats | None = Field(description="what the clip stage did; set by assembly")
    metadata: dict[str, Any] | None = Field(description="the request's metadata, unchanged")
    created_at: UtcDatetime
    updated_at: UtcDatetime
    finished_at: UtcDatetime | None


class JobDetail(Job):
    """A job's status object with its earlier attempts (``GET /jobs/{id}``)."""

    previous_attempts: list[Attempt]


class RetriedJob(JobDetail):
    """The job after ``retry``: its next attempt has started."""

    retried_slots: list[int] = Field(description="0-based slots rendered again; the others reuse their clip")
