"""RenderJob records in SQL (SQLite file by default, PostgreSQL by URL).

Status moves forward only: a final status is never overwritten, and progress
never goes backwards (the UPDATE itself takes the max, so concurrent writers
cannot regress it).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, case, create_engine, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .errors import JobConflict, JobNotFound
from .models import FINAL_STATUSES, JobStatus, RenderRequest


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
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    def render_request(self) -> RenderRequest:
        return RenderRequest.model_validate(self.request)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    with _engines_lock:
        eng = _engines.get(url)
        if eng is None:
            if url.startswith("sqlite"):
                eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

                @event.listens_for(eng, "connect")
                def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA busy_timeout=30000")
                    cur.close()
            else:
                eng = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
            Base.metadata.create_all(eng)
            _engines[url] = eng
        return eng


class JobStore:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def create_or_get(self, request: RenderRequest) -> tuple[RenderJob, bool]:
        """Record a new PENDING job, or return the existing one with the same body.

        Raises JobConflict when the job_id exists with a different body.
        """
        digest = request.fingerprint()
        job = RenderJob(
            id=request.job_id,
            mix_request_id=request.mix_request_id,
            trace_id=request.trace_id,
            status=JobStatus.PENDING.value,
            progress=0,
            error_log="",
            request=request.model_dump(mode="json"),
            request_hash=digest,
            metrics={},
            attempts=1,
        )
        with self.session() as s:
            s.add(job)
            try:
                s.commit()
                return job, True
            except IntegrityError:
                s.rollback()
        existing = self.get(request.job_id)
        if existing.request_hash != digest:
            raise JobConflict(
                f"job {request.job_id} already exists with a different request body; use a new job_id"
            )
        return existing, False

    def get(self, job_id: str) -> RenderJob:
        with self.session() as s:
            job = s.get(RenderJob, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    def advance(
        self,
        job_id: str,
        *,
        status: JobStatus | None = None,
        progress: int | None = None,
        error: str | None = None,
        only_from: frozenset[JobStatus] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job forward. Never leaves a final status; progress only rises.

        ``only_from`` restricts the change to jobs currently in one of those
        states (a compare-and-set); returns whether a row changed.
        """
        values: dict[str, Any] = {"updated_at": utcnow(), **fields}
        if status is not None:
            values["status"] = status.value
            if status.is_final:
                values["finished_at"] = utcnow()
                if status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_GAPS):
                    progress = 100
        if progress is not None:
            p = max(0, min(100, int(progress)))
            values["progress"] = case((RenderJob.progress < p, p), else_=RenderJob.progress)
        if error:
            values["error_log"] = _append_error(error)
        allowed = only_from if only_from is not None else frozenset(JobStatus) - FINAL_STATUSES
        stmt = (
            update(RenderJob)
            .where(RenderJob.id == job_id, RenderJob.status.in_([s.value for s in allowed]))
            .values(**values)
        )
        with self.session() as s:
            result = s.execute(stmt)
            s.commit()
            return bool(getattr(result, "rowcount", 0))

    def unfinished(self, *, updated_before: datetime) -> list[RenderJob]:
        """Jobs not in a final status whose record has not changed since ``updated_before``."""
        stmt = select(RenderJob).where(
            RenderJob.status.not_in([s.value for s in FINAL_STATUSES]), RenderJob.updated_at < updated_before
        )
        with self.session() as s:
            return list(s.scalars(stmt))

    def list(self, *, status: JobStatus | None = None, limit: int = 50, offset: int = 0) -> list[RenderJob]:
        stmt = (
            select(RenderJob).order_by(RenderJob.created_at.desc(), RenderJob.id).limit(limit).offset(offset)
        )
        if status is not None:
            stmt = stmt.where(RenderJob.status == status.value)
        with self.session() as s:
            return list(s.scalars(stmt))


def _append_error(line: str) -> Any:
    """SQL expression appending one line to error_log, keeping its tail bounded."""
    stamp = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = f"{stamp} {line.strip()}\n"
    return func.coalesce(RenderJob.error_log, "").concat(entry)
