"""Readiness: can this process reach what a render needs? Each check names what is down.

The answer says only "ok" or "down" per check: ``/readyz`` is open to anyone who can reach the API,
and exception text can hold hosts, user names or a database URL. The reason goes to the log.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy import text

from pipeline.context import Context

log = structlog.get_logger("clipline.health")


def _broker(ctx: Context) -> None:
    from actors.queues import check_broker

    check_broker(ctx.settings)


def _redis(ctx: Context) -> None:
    ctx.redis.ping()


def _database(ctx: Context) -> None:
    with ctx.store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _ffmpeg(ctx: Context) -> None:
    ctx.settings.ffmpeg_path()
    ctx.settings.ffprobe_path()


def _storage(ctx: Context) -> None:
    ctx.storage.check()  # the bucket (or directories) exist, credentials work, a probe can be written


CHECKS: dict[str, Callable[[Context], None]] = {
    "broker": _broker,
    "redis": _redis,
    "database": _database,
    "ffmpeg": _ffmpeg,
    "storage": _storage,
}


OK, DOWN = "ok", "down"


def readiness(ctx: Context) -> dict[str, str]:
    """name -> "ok" or "down"; why a check failed is logged (``readiness.down``), never returned."""
    out: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check(ctx)
            out[name] = OK
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named
            log.warning("readiness.down", check=name, error=f"{type(exc).__name__}: {exc}")
            out[name] = DOWN
    return out
