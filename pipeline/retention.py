"""Retention (spec 004): remove finished jobs older than a cutoff, their files and objects in the store
and, by default, records.

A job that has not ended is never touched: the record is deleted with a
compare-and-set on its final status first, and its files only after that.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from . import files
from .context import Context
from .errors import JobNotFound, RequestInvalid
from .models import ID_PATTERN
from .storage import StorageError, layout

log = structlog.get_logger("clipline.retention")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_age(text: str, *, option: str = "--older-than") -> float:
    """'90s', '30m', '24h', '7d', '2w' -> seconds. Raises RequestInvalid naming ``option``."""
    m = _AGE.match(text or "")
    if not m:
        raise RequestInvalid(
            f"{option} {text!r}: expected a number and a unit, like 90s, 30m, 24h, 7d or 2w",
            field=option.lstrip("-").replace("-", "_"),
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class Removed:
    job_id: str
    status: str
    finished_at: datetime | None
    bytes: int
    record: bool  # the job's record was deleted too


def cleanup(
    ctx: Context,
    older_than_s: float,
    *,
    keep_outputs: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Removed]:
    """Remove jobs that ended more than ``older_than_s`` ago.

    By default: work files, outputs (final.mp4, reports) and the records.
    ``keep_outputs``: only work files; outputs and records stay.
    ``dry_run``: say what would go, remove nothing.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
    removed: list[Removed] = []
    for job in ctx.store.finished_before(cutoff):
        work = files.job_work_dir(ctx.settings, job.id)  # this host's scratch
        prefixes = [layout.job_work(job.id)] + ([] if keep_outputs else [layout.job_output(job.id)])
        size = sum(ctx.storage.prefix_size(p) for p in prefixes)
        if ctx.storage.local_path(layout.job_work(job.id)) != work.resolve():
            size += files.tree_size(work)  # S3 or a shared mount: the scratch is not the store
        if keep_outputs and size == 0 and not work.exists():
            continue  # nothing left to remove for this job
        item = Removed(job.id, job.status, job.finished_at, size, record=not keep_outputs)
        if dry_run:
            removed.append(item)
            continue
        if keep_outputs:
            if not ctx.store.get(job.id).job_status.is_final:
                continue  # retried since it was listed
        elif not ctx.store.delete_finished(job.id, finished_before=cutoff):
            continue
        files.remove_tree(work)
        for prefix in prefixes:
            try:
                ctx.storage.delete_prefix(prefix)
            except StorageError as exc:  # the record is gone: name what is left for an operator
                log.error(
                    "retention.storage_failed", job_id=job.id, left=ctx.storage.uri(prefix), error=str(exc)
                )
        ctx.completion.forget(job.id)
        log.info("retention.removed", job_id=job.id, status=job.status, bytes=size, record=item.record)
        removed.append(item)
    return removed


#: A job's scratch left untouched this long on a host whose job record is gone counts as an orphan.
ORPHAN_AFTER_S = 3600.0
_JOB_DIR = re.compile(ID_PATTERN)


def remove_orphan_scratch(
    ctx: Context, *, min_age_s: float = ORPHAN_AFTER_S, now: float | None = None
) -> list[str]:
    """Remove this host's scratch of jobs that no longer exist (``cleanup`` ran on another host: it removes
    the record, the objects in the store and its own host's scratch only; a failed job's song and clips
    kept on the host that assembled it would stay for ever). Only folders named like a job id, untouched
    for ``min_age_s``, whose job has no record; returns their names. Every worker command that cuts
    or assembles runs it hourly on its host (``clipline.sweeper``), and ``clipline cleanup`` on its own."""
    root = ctx.settings.work_dir
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    gone = []
    for folder in root.iterdir():
        if not folder.is_dir() or not _JOB_DIR.match(folder.name):
            continue
        try:
            if now - folder.stat().st_mtime < min_age_s:
                continue
            ctx.store.get(folder.name)
        except JobNotFound:
            files.remove_tree(folder)
            log.info("retention.orphan_removed", job_id=folder.name, where=str(folder))
            gone.append(folder.name)
        except OSError:
            continue
    return gone

