"""The storage interface: where clips and results live, whichever backend holds them.

Every write is write-then-publish: a reader never sees a half-written object
under its final key (the file backend writes a temporary name and renames; S3
publishes an object only when its PUT or its multipart upload completes).
Writes are idempotent: a retry writes the same bytes under the same key.
Reads of a missing object return None (``head``, ``get_bytes``) or False
(``get_file``); failures raise StorageError (transient ones StorageUnavailable).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # without quotes
    content_type: str
    modified: datetime | None = None


@dataclass(frozen=True)
class Upload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime | None


class Storage(ABC):
    #: Names the store in logs and errors: ``file:///srv/clipline`` or ``s3://bucket/prefix``.
    description: str = ""

    @abstractmethod
    def check(self) -> None:
        """Raise StorageMisconfigured or StorageUnavailable naming the problem, or return: usable."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Publish a local file under ``key`` (a no-op when ``path`` already is the key's file)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> bool:
        """Copy the object to ``dest`` (temporary name, then rename); False when there is no object."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None: ...

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive) of an object known to exist, in chunks."""

    @abstractmethod
    def copy(self, src: str, dst: str) -> bool:
        """Copy one object to another key; False when ``src`` does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object (nothing when it is not there)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix``; returns how many."""

    @abstractmethod
    def prefix_size(self, prefix: str) -> int:
        """Bytes of every object under ``prefix``."""

    def local_path(self, key: str) -> Path | None:
        """The key's file on this host when the backend is a file system (readable in place), else None."""
        return None

    def presigned_url(self, key: str, ttl_s: int) -> str | None:
        """A URL anyone can GET for ``ttl_s`` seconds; None when the backend has none (the API serves it)."""
        return None

    def uri(self, key: str) -> str:
        """Where the object is, for people and records: a path or ``s3://bucket/prefix/key``."""
        return f"{self.description.rstrip('/')}/{key}"

    def incomplete_uploads(self, prefix: str = "") -> list[Upload]:
        """Multipart uploads started and never completed or aborted (none for the file backend)."""
        return []

    def abort_upload(self, upload: Upload) -> None:
        """Abort an incomplete multipart upload (its parts are freed); the file backend has none."""
        raise NotImplementedError(f"{type(self).__name__} has no multipart uploads")
