"""The SQL tables: render jobs, their earlier attempts, webhook deliveries.

A change here needs a migration in ``migrations/versions`` (tests/integration/test_migrations.py fails
until the migrations build exactly these tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .models import JobStatus, Quality, RenderRequest

#: Opens the error_log line that starts a retry's attempt; the lines before it belong to earlier attempts.
ATTEMPT_MARK = "=== attempt"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class RenderJob(Base):
    __tablename__ = "render_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mix_request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    trace_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error_log: Mapped[str] = mapped_column(Text, default="")
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_hash: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output_path: Mapped[str | None] = mapped_column(Text)
    report_path: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    def render_request(self) -> RenderRequest:
        return RenderRequest.model_validate(self.request)

    @property
    def quality(self) -> Quality:
        """The request's ``output.quality``: "final" when it is absent (or the request was not valid)."""
        output = self.request.get("output") if isinstance(self.request, dict) else None
        return "draft" if isinstance(output, dict) and output.get("quality") == "draft" else "final"

    def current_error(self) -> str | None:
        """The last error of the current attempt (error_log keeps the lines of every attempt)."""
        lines = (self.error_log or "").strip().splitlines()
        marks = [i for i, line in enumerate(lines) if ATTEMPT_MARK in line]
        current = lines[marks[-1] + 1 :] if marks else lines
        return current[-1] if current else None


class JobAttempt(Base):
    """An earlier attempt of a job that was retried: what it ended as and where its report was kept."""

    __tablename__ = "render_job_attempts"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    report_path: Mapped[str | None] = mapped_column(Text)
    output_path: Mapped[str | None] = mapped_column(Text)
    clip_stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """One callback of one job state: pending until the receiver answers 2xx, or failed after the last try.

    (job_id, attempt, status) is unique, so a state is queued for delivery once, whoever notices it.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("job_id", "attempt", "status", name="uq_delivery_state"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | delivered | failed
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
