"""The command line's exit codes, and how an error becomes one (with its message, as text or JSON).

0    done: the job is COMPLETED or COMPLETED_WITH_GAPS (or the command did what it was asked)
1    the job is FAILED or CANCELLED (or clipline itself failed: a bug, traceback on stderr)
2    bad request: invalid JSON or request (the field is named), unknown job or message, a state
     that forbids the action, a bad option or setting, ffmpeg missing, a port in use
3    infrastructure unavailable: the broker, Redis, the database or the store of clips and results
     (bucket missing, credentials rejected, unreachable) cannot be used, or the database schema is
     not the code's (``clipline db upgrade``)
4    ``--wait --timeout S`` ran out: the job is still running (and goes on)
130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import IntEnum

import redis.exceptions
import sqlalchemy.exc

from pipeline.errors import (
    ClipLineError,
    FFmpegMissing,
    JobConflict,
    JobNotFound,
    JobStateConflict,
    RequestInvalid,
)
from pipeline.schema import SchemaMismatch
from pipeline.settings import SettingsError
from pipeline.storage import StorageError


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    INVALID = 2
    UNAVAILABLE = 3
    TIMEOUT = 4
    INTERRUPTED = 130


class PortInUse(ClipLineError):
    """A port this command must listen on is taken (another worker on this host?)."""


class Unavailable(ClipLineError):
    """A piece of infrastructure (``what``: broker, redis, database) cannot be reached; the message says
    what became of the work."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what} unavailable: {detail}")
        self.what = what


class WaitTimeout(ClipLineError):
    """``--wait --timeout`` ran out before the job was final."""


@dataclass(frozen=True)
class Failure:
    exit: Exit
    code: str  # stable, for scripts: request_invalid, broker_unavailable, ...
    message: str
    field: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "error": {"code": self.code, "message": self.message, "field": self.field},
            "exit_code": int(self.exit),
        }


#: Errors of clipline's own, by the exit they give and their stable code (first match wins).
_OWN: list[tuple[type[BaseException], Exit, str]] = [
    (RequestInvalid, Exit.INVALID, "request_invalid"),
    (JobConflict, Exit.INVALID, "job_conflict"),
    (JobNotFound, Exit.INVALID, "job_not_found"),
    (JobStateConflict, Exit.INVALID, "job_state_conflict"),
    (SettingsError, Exit.INVALID, "settings_invalid"),
    (FFmpegMissing, Exit.INVALID, "ffmpeg_missing"),
    (PortInUse, Exit.INVALID, "port_in_use"),
    (SchemaMismatch, Exit.UNAVAILABLE, "schema_mismatch"),
    (StorageError, Exit.UNAVAILABLE, "storage_unavailable"),
    (WaitTimeout, Exit.TIMEOUT, "wait_timeout"),
]


def _one_line(exc: BaseException) -> str:
    text = " | ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    return text or type(exc).__name__


def _unavailable(exc: BaseException) -> str | None:
    """Which piece of infrastructure ``exc`` says is down, if it says one is."""
    from actors.queues import BROKER_ERRORS

    if isinstance(exc, BROKER_ERRORS):
        return "broker"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "redis"
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return "database"
    return None


def classify(exc: BaseException) -> Failure | None:
    """The exit and message for an error the command line expects; None for a bug (let it raise)."""
    if isinstance(exc, Unavailable):
        return Failure(Exit.UNAVAILABLE, f"{exc.what}_unavailable", _one_line(exc))
    for kind, code, name in _OWN:
        if isinstance(exc, kind):
            return Failure(code, name, _one_line(exc), getattr(exc, "field", None) or None)
    down = _unavailable(exc)
    if down is not None:
        cause = _one_line(getattr(exc, "orig", None) or exc)
        return Failure(Exit.UNAVAILABLE, f"{down}_unavailable", f"{down} unavailable: {cause}")
    if isinstance(exc, ClipLineError):
        return Failure(Exit.FAILED, "failed", _one_line(exc))
    return None


def report(failure: Failure, *, as_json: bool) -> int:
    """Print the failure (one JSON object on stdout under --json, one line on stderr always)."""
    if as_json:
        print(json.dumps(failure.as_json(), ensure_ascii=False), flush=True)
    print(f"error: {failure.message}", file=sys.stderr, flush=True)
    return int(failure.exit)
