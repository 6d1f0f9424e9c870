"""The file backend: keys are files under one root per area (one host, or a shared mount).

Writes go to a temporary sibling name and are renamed into place, so a
reader never sees a torn file. The default roots are CLIPLINE_WORK_DIR and
CLIPLINE_OUTPUT_DIR, where clipline always kept clips and results: a clip
cut in the work dir already is its published object.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pipeline import files

from . import layout
from .base import ObjectInfo, Storage
from .errors import StorageError

_CHUNK = 256 * 1024


def _chunks(fh: BinaryIO, start: int, left: int) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


class FileStorage(Storage):
    def __init__(self, roots: dict[str, Path], description: str = "") -> None:
        self.roots = {area: Path(roots[area]) for area in layout.AREAS}
        self.description = description or "file://" + ",".join(str(p) for p in self.roots.values())

    def path(self, key: str) -> Path:
        area, rest = layout.split(key)
        try:
            return files.under(self.roots[area], rest)
        except ValueError as exc:
            raise StorageError(str(exc), where=self.description) from exc

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def _fail(self, what: str, key: str, exc: OSError) -> StorageError:
        """A file system error is not a network blip: not retried (a full disk stays full for a while)."""
        return StorageError(f"{what} {key}: {type(exc).__name__}: {exc}", where=self.description)

    def check(self) -> None:
        for area, root in self.roots.items():
            try:
                root.mkdir(parents=True, exist_ok=True)
                probe = files.temp_name(root / ".clipline-probe")
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise StorageError(
                    f"{area} directory {root} is not writable: {type(exc).__name__}: {exc}",
                    where=self.description,
                ) from exc

    def _publish(self, key: str, write: object) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = files.temp_name(dest)
        try:
            if isinstance(write, bytes):
                tmp.write_bytes(write)
            else:
                shutil.copyfile(str(write), tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, path: Path) -> None:
        dest = self.path(key)
        if Path(path).resolve() == dest:
            return  # cut in place: already published
        try:
            self._publish(key, Path(path))
        except OSError as exc:
            raise self._fail("could not write", key, exc) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._publish(key, bytes(data))
        except OSError as exc:
            raise self._fail("could not write", key, exc) from exc

    def get_file(self, key: str, dest: Path) -> bool:
        src = self.path(key)
        if Path(dest).resolve() == src:
            return src.is_file()
        tmp = files.temp_name(Path(dest))
        try:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._fail("could not read", key, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            raise self._fail("could not read", key, exc) from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self.path(key).stat()
        except FileNotFoundError:
            return None
        if not self.path(key).is_file():
            return None
        tag = hashlib.sha1(f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest()[:20]
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=tag,
            content_type=layout.content_type(key),
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Opens the file at once (so a failure is raised here, before any byte is sent)."""
        try:
            fh = open(self.path(key), "rb")  # noqa: SIM115 - closed by the generator
        except OSError as exc:
            raise self._fail("could not read", key, exc) from exc
        return _chunks(fh, start, end - start + 1)

    def copy(self, src: str, dst: str) -> bool:
        source = self.path(src)
        if not source.is_file():
            return False
        try:
            self._publish(dst, source)
        except OSError as exc:
            raise self._fail("could not copy", src, exc) from exc
        return True

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def _folder(self, prefix: str) -> Path:
        area, rest = layout.split(prefix)
        return files.under(self.roots[area], rest.rstrip("/"))

    def delete_prefix(self, prefix: str) -> int:
        folder = self._folder(prefix)
        count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        files.remove_tree(folder)
        return count

    def prefix_size(self, prefix: str) -> int:
        return files.tree_size(self._folder(prefix))
