"""Readiness: can this process reach what a render needs? Each check names what is down."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from pipeline.context import Context
from pipeline.errors import FFmpegMissing


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


def readiness(ctx: Context) -> dict[str, str]:
    """name -> "ok" or the error that made it fail."""
    out: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check(ctx)
            out[name] = "ok"
        except FFmpegMissing as exc:
            out[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named
            out[name] = f"{type(exc).__name__}: {exc}"
    return out
