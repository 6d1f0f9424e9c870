"""Abort the multipart uploads that no worker will complete (a worker killed mid-upload leaves one).

An incomplete upload is invisible (no object exists under its key) but its
parts take space until it is aborted. The sweeper aborts, once per interval
cluster-wide:

- an upload under a job whose job has ended or no longer exists: nothing will
  ever complete it (a live duplicate that loses its upload retries and finds
  the job final);
- any upload older than CLIPLINE_S3_ABORT_UPLOADS_AFTER_S (0: never by age),
  far above the longest upload, for keys outside a job or jobs that never end.

Only clipline's own keys (``work/...``, ``output/...`` under its prefix) are
ever aborted: in a bucket shared without a prefix, another application's
uploads are left alone. An abort that fails is logged and retried next sweep.

An S3 lifecycle rule (AbortIncompleteMultipartUpload) does the second for
free where the store supports it; README shows one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from . import layout
from .base import Storage, Upload
from .errors import StorageError

log = structlog.get_logger("clipline.storage")


@dataclass(frozen=True)
class Aborted:
    upload: Upload
    why: str


def lost(
    uploads: list[Upload],
    job_ended: Callable[[str], bool],
    *,
    older_than_s: float,
    now: datetime | None = None,
) -> list[Aborted]:
    """Which uploads to abort, and why (pure). ``job_ended(job_id)``: final or gone."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=older_than_s) if older_than_s > 0 else None
    out: list[Aborted] = []
    for up in uploads:
        try:
            layout.split(up.key)
        except ValueError:
            continue  # not clipline's (a bucket shared without a prefix): never aborted, not even by age
        job = layout.job_of(up.key)
        if job is not None and job_ended(job):
            out.append(Aborted(up, f"job {job} has ended"))
        elif cutoff is not None and up.initiated is not None and _aware(up.initiated) < cutoff:
            out.append(Aborted(up, f"started more than {older_than_s:g} s ago"))
    return out


def abort_lost(
    storage: Storage, job_ended: Callable[[str], bool], *, older_than_s: float, now: datetime | None = None
) -> list[Aborted]:
    """Abort what ``lost`` picks among the store's incomplete uploads; returns what was aborted."""
    found = lost(storage.incomplete_uploads(), job_ended, older_than_s=older_than_s, now=now)
    done = []
    for item in found:
        try:
            storage.abort_upload(item.upload)
        except StorageError as exc:  # the next sweep tries again; the others are not kept waiting
            log.warning("storage.upload_not_aborted", key=item.upload.key, error=str(exc))
            continue
        done.append(item)
    return done


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
