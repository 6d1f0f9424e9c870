"""Errors raised by clipline's domain.

Callers branch on types, never on message strings. Third-party failures
(httpx, ffmpeg exit codes, SQL integrity errors) are translated at the
boundary into the most specific class here and chained with ``from``.

    ClipLineError
    ├── RequestInvalid          request failed validation (names the field)
    ├── JobConflict             same job_id, different request body
    ├── JobNotFound             no job with that id
    ├── ServiceUnavailable      the broker, Redis or the database cannot be reached (HTTP 503)
    ├── JobStateConflict        the job's state forbids the action
    │   ├── JobFinished         the job already ended (cannot be cancelled)
    │   └── JobNotRetryable     the job is running, or completed with nothing to retry
    ├── Superseded              the job ended, or left the attempt a clip was cut for: nothing is published
    ├── SourceError             a source video could not be read
    │   ├── SourceUnavailable   transient: 5xx, 429, timeout, refused (retry)
    │   ├── SourceNotFound      permanent: 404/410, video gone (fallback now)
    │   ├── SourceForbidden     permanent: 401/403 (fallback now)
    │   └── SourceInvalid       permanent: malformed playlist, bad scheme, corrupt media
    └── FFmpegError             ffmpeg could not do its job
        ├── FFmpegMissing       the binary is not there (fatal for the stage)
        ├── FFmpegTimeout       it ran past its timeout and was killed (transient)
        └── FFmpegFailed        it exited non-zero (stderr tail attached); killed by a signal: transient
"""

from __future__ import annotations

from typing import NamedTuple

import redis
import sqlalchemy.exc

from . import redact


class ClipLineError(Exception):
    """Root of every error clipline raises on purpose."""


class FieldProblem(NamedTuple):
    """One thing wrong with a request: where (``lines[3].clip.hls_url``) and what."""

    field: str
    message: str


class RequestInvalid(ClipLineError):
    """The render request failed validation; ``field`` names where (the first of ``problems``)."""

    def __init__(self, message: str, *, field: str = "", problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.field = field
        alone = [FieldProblem(field, message.removeprefix(f"{field}: "))]  # one problem, its field in front
        self.problems = problems if problems is not None else alone

    @classmethod
    def of(cls, problems: list[FieldProblem]) -> RequestInvalid:
        """Every problem in one error: the message lists them all (``field: what; field: what``)."""
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        return cls(message, field=problems[0].field, problems=problems)


class JobConflict(ClipLineError):
    """A job with this id exists with a different request body."""


class JobNotFound(ClipLineError):
    """No job record has this id."""


class ServiceUnavailable(ClipLineError):
    """A service clipline needs (the broker, Redis, the database) cannot be reached; try again later."""


class JobStateConflict(ClipLineError):
    """The job's current state forbids the action asked for (HTTP 409)."""


class JobFinished(JobStateConflict):
    """The job is already in a final state; it cannot be cancelled."""


class JobNotRetryable(JobStateConflict):
    """The job has not ended, or it completed with every slot's footage: nothing to retry."""


class Superseded(ClipLineError):
    """The job ended, or moved on to another attempt (cancelled and retried), while a clip of ``attempt``
    was being made: its file, outcome and error belong to no attempt, and are dropped."""

    def __init__(self, job_id: str, *, attempt: int, job_attempt: int, job_status: str) -> None:
        super().__init__(
            f"job {job_id} is {job_status} at attempt {job_attempt}; this clip was for attempt {attempt}"
        )
        self.job_id = job_id
        self.attempt = attempt
        self.job_attempt = job_attempt
        self.job_status = job_status


class SourceError(ClipLineError):
    """A source video (playlist, segment, API record) could not be read."""

    transient = False

    def __init__(self, message: str, *, video_id: str = "", url: str = "") -> None:
        # Stored on clip and job records and sent in callbacks: signed query strings are blanked here.
        super().__init__(redact.text(message))
        self.video_id = video_id
        self.url = redact.text(url)


class SourceUnavailable(SourceError):
    """Transient: 5xx, 429, timeout or refused connection; worth a retry."""

    transient = True

    def __init__(
        self, message: str, *, video_id: str = "", url: str = "", retry_after_s: float | None = None
    ):
        super().__init__(message, video_id=video_id, url=url)
        self.retry_after_s = retry_after_s


class SourceNotFound(SourceError):
    """Permanent: the source answered 404/410 or the API has no such video."""


class SourceForbidden(SourceError):
    """Permanent: the source answered 401/403."""


class SourceInvalid(SourceError):
    """Permanent: malformed playlist, forbidden scheme or host, corrupt media."""


class FFmpegError(ClipLineError):
    """ffmpeg (or ffprobe) did not produce what was asked."""

    transient = False

    def __init__(self, message: str, *, argv: list[str] | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.argv = argv or []
        self.stderr_tail = stderr_tail

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}: {self.stderr_tail}" if self.stderr_tail else base


class FFmpegMissing(FFmpegError):
    """The ffmpeg binary is not installed or not executable."""


class FFmpegTimeout(FFmpegError):
    """ffmpeg ran past its timeout and was killed."""

    transient = True


class FFmpegFailed(FFmpegError):
    """ffmpeg exited non-zero. Killed by a signal from outside (the OOM killer, an operator) is
    transient: the same cut may well succeed again; an error exit of its own is not."""

    def __init__(
        self, message: str, *, argv: list[str] | None = None, stderr_tail: str = "", returncode: int = 1
    ) -> None:
        super().__init__(message, argv=argv, stderr_tail=stderr_tail)
        self.returncode = returncode
        self.transient = returncode < 0


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying (network blips, timeouts, Redis or the database restarting)."""
    if infrastructure_unavailable(exc):
        return True
    return bool(getattr(exc, "transient", False))


def infrastructure_unavailable(exc: BaseException) -> bool:
    """Redis or the SQL store cannot be reached for now (a restart, a failover, a dropped connection, a
    locked SQLite file): whatever a stage was doing, the same step may well succeed in a moment."""
    return isinstance(exc, _UNAVAILABLE)


_UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)
