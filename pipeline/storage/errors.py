"""Errors of the object store, translated at the boundary from OS and S3 client failures.

ClipLineError
└── StorageError            clips or results could not be read or written
    ├── StorageUnavailable  transient: unreachable, timed out, 5xx, throttled (retry with backoff)
    └── StorageMisconfigured permanent: bucket missing, credentials missing or rejected, access denied
"""

from __future__ import annotations

from pipeline.errors import ClipLineError


class StorageError(ClipLineError):
    """Clips or results could not be read or written; ``where`` names the store (and key)."""

    transient = False

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"storage {where}: {message}" if where else f"storage: {message}")
        self.where = where


class StorageUnavailable(StorageError):
    """Transient: the store is unreachable, timed out, answered 5xx or throttled; worth a retry."""

    transient = True


class StorageMisconfigured(StorageError):
    """Permanent: the bucket is missing, the credentials are missing or rejected, access is denied."""
