"""Where clips and results live: one interface, a file backend and an S3 backend.

``open_storage(settings)`` chooses by CLIPLINE_STORAGE_URL:

- unset: the file backend on CLIPLINE_WORK_DIR (clips) and CLIPLINE_OUTPUT_DIR
  (results), the layout clipline always had: one host, nothing to install;
- ``file:///path``: the file backend with ``/path/work`` and ``/path/output``
  (a shared mount);
- ``s3://bucket/prefix``: any S3-compatible store (AWS, MinIO), endpoint from
  CLIPLINE_S3_ENDPOINT_URL, region and credentials from the standard AWS
  variables. Hosts share nothing but the services.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.settings import Settings, SettingsError

from . import layout
from .base import ObjectInfo, Storage, Upload
from .errors import StorageError, StorageMisconfigured, StorageUnavailable
from .local import FileStorage

__all__ = [
    "FileStorage",
    "ObjectInfo",
    "Storage",
    "StorageError",
    "StorageMisconfigured",
    "StorageUnavailable",
    "Upload",
    "layout",
    "open_storage",
]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/-]*$")


def open_storage(settings: Settings) -> Storage:
    url = (settings.storage_url or "").strip()
    if not url:
        return FileStorage(
            {layout.WORK: settings.work_dir, layout.OUTPUT: settings.output_dir},
            description=f"file:// (work {settings.work_dir}, output {settings.output_dir})",
        )
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise SettingsError(
                f"CLIPLINE_STORAGE_URL {url!r}: a file URL needs an absolute path, file:///path"
            )
        root = Path(unquote(parts.path))
        return FileStorage(
            {layout.WORK: root / layout.WORK, layout.OUTPUT: root / layout.OUTPUT},
            description=f"file://{root}",
        )
    if parts.scheme == "s3":
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise SettingsError(f"CLIPLINE_STORAGE_URL {url!r}: {bucket!r} is not a valid S3 bucket name")
        if not _PREFIX.match(prefix) or ".." in prefix.split("/") or "//" in prefix:
            raise SettingsError(
                f"CLIPLINE_STORAGE_URL {url!r}: prefix {prefix!r} has characters S3 keys avoid"
            )
        if parts.query or parts.fragment:
            raise SettingsError(
                f"CLIPLINE_STORAGE_URL {url!r}: no query or fragment, only s3://bucket/prefix"
            )
        from .s3 import S3Storage  # boto3 is imported only when S3 is used

        return S3Storage(
            bucket,
            prefix,
            endpoint_url=settings.s3_endpoint_url or None,
            public_endpoint_url=settings.s3_public_endpoint_url or None,
            max_attempts=settings.s3_max_attempts,
            timeout_s=settings.http_timeout_s,
            multipart_threshold_bytes=settings.s3_multipart_threshold_bytes,
            part_size_bytes=settings.s3_part_size_bytes,
            concurrency=settings.s3_transfer_concurrency,
        )
    raise SettingsError(
        f"CLIPLINE_STORAGE_URL {url!r}: expected file:///path or s3://bucket/prefix (or unset for "
        "CLIPLINE_WORK_DIR and CLIPLINE_OUTPUT_DIR)"
    )
