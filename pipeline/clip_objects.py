"""A job's clips in the store: a verified clip is published with its outcome record; the assembler
fetches them back. Keys come from ``storage.layout`` (validated ids only).

With the default file backend the store's work area is CLIPLINE_WORK_DIR, so
a clip cut there already is its published object and nothing is copied. With
S3 the clip is uploaded and its local file removed: the next stage may run on
another host.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from . import files
from .context import Context
from .models import ClipRecord
from .storage import StorageError, layout

log = structlog.get_logger("clipline.clip")


def publish(ctx: Context, job_id: str, index: int, path: Path) -> str:
    """Publish a verified clip (write-then-publish, idempotent); returns where it is now."""
    key = layout.clip(job_id, index)
    ctx.storage.put_file(key, path)
    if ctx.storage.local_path(key) != path.resolve():
        path.unlink(missing_ok=True)  # the store holds it now
    return ctx.storage.uri(key)


def exists(ctx: Context, job_id: str, index: int) -> bool:
    return ctx.storage.head(layout.clip(job_id, index)) is not None


def write_record(ctx: Context, job_id: str, record: ClipRecord) -> None:
    """The outcome beside the clip (its 'sidecar'): the durable truth when Redis loses the job's state."""
    data = json.dumps(record.to_json(), ensure_ascii=False, indent=2).encode()
    ctx.storage.put_bytes(layout.clip_record(job_id, record.index), data)


def read_record(ctx: Context, job_id: str, index: int) -> ClipRecord | None:
    """The outcome a clip wrote beside itself when it finished (None: it never finished)."""
    raw = ctx.storage.get_bytes(layout.clip_record(job_id, index))
    try:
        data = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        return None
    return ClipRecord.from_json(data) if isinstance(data, dict) else None


def was_logged(ctx: Context, job_id: str, index: int) -> bool:
    """Best effort: a store that fails reads as 'not logged' (a final status may be logged twice)."""
    try:
        return ctx.storage.head(layout.clip_logged(job_id, index)) is not None
    except StorageError:
        return False


def mark_logged(ctx: Context, job_id: str, index: int) -> None:
    try:
        ctx.storage.put_bytes(layout.clip_logged(job_id, index), b"")
    except StorageError as exc:
        log.warning("clip.marker_failed", job_id=job_id, index=index, error=str(exc))


def forget(ctx: Context, job_id: str, index: int) -> None:
    """Remove a slot's clip, record and marker, so a retry cuts it again."""
    for suffix in (".json", ".mp4", ".logged"):
        ctx.storage.delete(layout.clip(job_id, index, suffix))


def remove_job(ctx: Context, job_id: str) -> None:
    """The job's local scratch on this host and its clips in the store (retention retries a failure)."""
    files.remove_tree(files.job_work_dir(ctx.settings, job_id))
    try:
        ctx.storage.delete_prefix(layout.job_work(job_id))
    except StorageError as exc:
        log.warning("clip.cleanup_failed", job_id=job_id, error=str(exc))


def fetch(ctx: Context, job_id: str, indexes: list[int], dest: Path) -> dict[int, Path]:
    """Local files of the job's clips, in place when the store is this file system, else downloaded
    in parallel into ``dest``. Raises StorageError naming the first clip that could not be had."""
    local: dict[int, Path] = {}
    wanted: list[int] = []
    for i in indexes:
        path = ctx.storage.local_path(layout.clip(job_id, i))
        if path is not None:
            local[i] = path
        else:
            wanted.append(i)
    if not wanted:
        return local

    def one(i: int) -> tuple[int, Path]:
        target, key = dest / f"{i:04d}.mp4", layout.clip(job_id, i)
        if not ctx.storage.get_file(key, target):
            raise StorageError(f"clip {i} is missing from the store", where=ctx.storage.uri(key))
        return i, target

    dest.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=ctx.settings.s3_transfer_concurrency) as pool:
        local.update(pool.map(one, wanted))
    return local
