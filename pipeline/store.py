"""Job records in SQL (SQLite file by default, PostgreSQL by URL); the tables are in ``tables``, their
migrations in ``migrations`` (an engine is only handed out for a database at the code's revision: ``schema``).

Status moves forward only: a final status is never overwritten, and progress
never goes backwards (the UPDATE itself takes the max, so concurrent writers
cannot regress it).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Update, case, create_engine, delete, event, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import schema
from .errors import JobConflict, JobNotFound
from .models import FINAL_STATUSES, JobStatus, RenderRequest
from .problems import CONTROL_CHARS
from .tables import ATTEMPT_MARK, JobAttempt, RenderJob, WebhookDelivery, utcnow

__all__ = ["JobAttempt", "JobStore", "RenderJob", "WebhookDelivery", "engine_for", "new_engine", "utcnow"]

#: Opens the request_hash of a job recorded from a refused request (``record_invalid``).
INVALID_PREFIX = "invalid:"
_TRACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: The final statuses as stored, for ``status IN (...)`` filters.
_FINAL = sorted(s.value for s in FINAL_STATUSES)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def new_engine(url: str) -> Engine:
    """An engine for ``url`` as the store uses it, with no schema check (``clipline db`` uses this one)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(eng, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return eng


def engine_for(url: str) -> Engine:
    """The process's engine for ``url``; raises SchemaMismatch when the database is not at the code's
    revision (an empty one is created at it)."""
    with _engines_lock:
        eng = _engines.get(url)
        if eng is None:
            eng = new_engine(url)
            try:
                schema.ensure_current(eng)
            except BaseException:
                eng.dispose()
                raise
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
            if existing.request_hash.startswith(INVALID_PREFIX) and self._replace_invalid(existing, job):
                return self.get(request.job_id), True
            raise JobConflict(
                f"job {request.job_id} already exists with a different request body; use a new job_id"
            )
        return existing, False

    def record_invalid(self, job_id: str, request: dict[str, Any], error: str) -> bool:
        """Record a job whose request was refused (it came over the broker) as FAILED with the error.

        Returns False when a job with this id exists already: it is left as it is. A valid request
        with the same id later replaces this record (``create_or_get``).
        """
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        mix = request.get("mix_request_id")
        trace = request.get("trace_id")
        job = RenderJob(
            id=job_id,
            mix_request_id=mix if isinstance(mix, str) and len(mix) <= 128 else None,
            trace_id=trace if isinstance(trace, str) and _TRACE.match(trace) else secrets.token_hex(8),
            status=JobStatus.FAILED.value,
            progress=0,
            error_log=_error_line(error),
            request=request,
            request_hash=INVALID_PREFIX + digest,
            metrics={},
            attempts=1,
            finished_at=utcnow(),
        )
        with self.session() as s:
            s.add(job)
            try:
                s.commit()
                return True
            except IntegrityError:
                s.rollback()
                return False

    def _replace_invalid(self, existing: RenderJob, job: RenderJob) -> bool:
        """A valid request takes the place of a refused one with the same id: its next attempt, PENDING."""
        attempt = existing.attempts
        note = f"{ATTEMPT_MARK} {attempt + 1} replaces the refused request of attempt {attempt}"
        history = JobAttempt(
            job_id=existing.id,
            attempt=existing.attempts,
            status=existing.status,
            finished_at=existing.finished_at,
            report_path=None,
            output_path=None,
            clip_stats=None,
            error=existing.current_error(),
        )
        stmt = (
            update(RenderJob)
            .where(RenderJob.id == existing.id, RenderJob.request_hash == existing.request_hash)
            .values(
                mix_request_id=job.mix_request_id,
                trace_id=job.trace_id,
                status=JobStatus.PENDING.value,
                progress=0,
                request=job.request,
                request_hash=job.request_hash,
                metrics={},
                attempts=existing.attempts + 1,
                finished_at=None,
                updated_at=utcnow(),
                error_log=_append_error(note),
            )
        )
        return self._next_attempt(stmt, history)

    def _next_attempt(self, stmt: Update, history: JobAttempt) -> bool:
        """Run the compare-and-set ``stmt`` that starts a job's next attempt and keep the last attempt's
        ``history`` with it, in one transaction; False (nothing written) when the job changed meanwhile."""
        with self.session() as s:
            if not getattr(s.execute(stmt), "rowcount", 0):
                s.rollback()
                return False
            s.merge(history)
            s.commit()
            return True

    def get(self, job_id: str) -> RenderJob:
        if not _storable(job_id):
            raise JobNotFound(f"no job {job_id!r}")
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
        attempt: int | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job forward. Never leaves a final status; progress only rises.

        ``only_from`` restricts the change to jobs currently in one of those
        states, ``attempt`` to the job's attempt of that number (a stage of an
        attempt that was cancelled and retried changes nothing of the next one):
        compare-and-sets; returns whether a row changed.
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
        if attempt is not None:
            stmt = stmt.where(RenderJob.attempts == attempt)
        with self.session() as s:
            result = s.execute(stmt)
            s.commit()
            return bool(getattr(result, "rowcount", 0))

    def restart(self, job_id: str, *, from_status: JobStatus, history: JobAttempt, note: str) -> bool:
        """Start the job's next attempt (retry): PENDING, progress 0, attempts + 1, the old attempt kept.

        A compare-and-set on ``from_status``: of two retries racing, one wins.
        """
        stmt = (
            update(RenderJob)
            .where(RenderJob.id == job_id, RenderJob.status == from_status.value)
            .values(
                status=JobStatus.PENDING.value,
                progress=0,
                attempts=RenderJob.attempts + 1,
                finished_at=None,
                output_path=None,
                report_path=None,
                metrics={},
                updated_at=utcnow(),
                error_log=_append_error(note),
            )
        )
        return self._next_attempt(stmt, history)

    def history(self, job_id: str) -> list[JobAttempt]:
        stmt = select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
        with self.session() as s:
            return list(s.scalars(stmt))

    def delete_finished(self, job_id: str, *, finished_before: datetime) -> bool:
        """Delete a job's record, history and webhooks if it is still final and ended before the cutoff."""
        stmt = delete(RenderJob).where(
            RenderJob.id == job_id, RenderJob.status.in_(_FINAL), RenderJob.finished_at < finished_before
        )
        with self.session() as s:
            gone = bool(getattr(s.execute(stmt), "rowcount", 0))
            if gone:
                s.execute(delete(JobAttempt).where(JobAttempt.job_id == job_id))
                s.execute(delete(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
            s.commit()
            return gone

    def finished_before(self, cutoff: datetime) -> list[RenderJob]:
        return self._finished(RenderJob.finished_at < cutoff)

    def finished_since(self, since: datetime) -> list[RenderJob]:
        return self._finished(RenderJob.finished_at >= since)

    def _finished(self, when: ColumnElement[bool]) -> list[RenderJob]:
        """Jobs in a final status whose end matches ``when``."""
        with self.session() as s:
            return list(s.scalars(select(RenderJob).where(RenderJob.status.in_(_FINAL), when)))

    def count_by_status(self) -> dict[str, int]:
        stmt = select(RenderJob.status, func.count()).group_by(RenderJob.status)
        with self.session() as s:
            return {str(status): int(n) for status, n in s.execute(stmt)}

    def count_deliveries_by_state(self) -> dict[str, int]:
        """Callback deliveries by state: pending, delivered, failed (given up after the last try)."""
        stmt = select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
        with self.session() as s:
            return {str(state): int(n) for state, n in s.execute(stmt)}

    def unfinished(self, *, updated_before: datetime) -> list[RenderJob]:
        """Jobs not in a final status whose record has not changed since ``updated_before``."""
        stmt = select(RenderJob).where(RenderJob.status.not_in(_FINAL), RenderJob.updated_at < updated_before)
        with self.session() as s:
            return list(s.scalars(stmt))

    def search(
        self, *, status: JobStatus | None = None, text: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[RenderJob], int]:
        """A page of jobs, newest first, and how many match in all: by status, and by ``text`` found
        in the job id or mix_request_id (a plain substring: ``%`` and ``_`` match themselves)."""
        if text and not _storable(text):
            return [], 0
        where: list[ColumnElement[bool]] = []
        if status is not None:
            where.append(RenderJob.status == status.value)
        if text:
            where.append(
                or_(
                    RenderJob.id.contains(text, autoescape=True),
                    RenderJob.mix_request_id.contains(text, autoescape=True),
                )
            )
        stmt = select(RenderJob).where(*where).order_by(RenderJob.created_at.desc(), RenderJob.id)
        with self.session() as s:
            total = int(s.scalar(select(func.count()).select_from(RenderJob).where(*where)) or 0)
            return list(s.scalars(stmt.limit(limit).offset(offset))), total

    def list(
        self,
        *,
        status: JobStatus | None = None,
        mix_request_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RenderJob]:
        """Jobs, newest first; of one status and/or one mix_request_id when given."""
        if mix_request_id is not None and not _storable(mix_request_id):
            return []
        stmt = (
            select(RenderJob).order_by(RenderJob.created_at.desc(), RenderJob.id).limit(limit).offset(offset)
        )
        if status is not None:
            stmt = stmt.where(RenderJob.status == status.value)
        if mix_request_id is not None:
            stmt = stmt.where(RenderJob.mix_request_id == mix_request_id)
        with self.session() as s:
            return list(s.scalars(stmt))


def _storable(text: str) -> bool:
    """Whether a stored text could equal or hold ``text``: none holds a NUL (PostgreSQL refuses it in a
    query, a DataError: a 500 where no such job is the answer)."""
    return "\x00" not in text


def _error_line(text: str) -> str:
    """One line of error_log: a UTC timestamp and the error.

    A multi-line error (ffmpeg's stderr tail) is joined with " | ": error_log is
    read line by line, and the job's error must keep the line that names the cause.
    Other control characters, which an error may quote from outside (a NUL in a URL
    a video API answered: PostgreSQL refuses it in text), are written as ``\\xNN``.
    """
    stamp = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    one_line = " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return f"{stamp} {CONTROL_CHARS.sub(_escaped, one_line)}\n"


def _escaped(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


def _append_error(text: str) -> Any:
    """SQL expression appending one line to error_log."""
    return func.coalesce(RenderJob.error_log, "").concat(_error_line(text))
