"""The S3 backend (AWS S3, MinIO, any S3-compatible store) through boto3.

boto3 signs every request (no hand-written signing), retries throttling and
5xx answers with backoff (``CLIPLINE_S3_MAX_ATTEMPTS``), and its transfer
manager uploads a file above ``CLIPLINE_S3_MULTIPART_THRESHOLD_BYTES`` as a
multipart upload in parallel parts. An object becomes visible only when its
PUT or its multipart upload completes; a failed multipart upload is aborted
by the transfer manager, and one whose worker died is aborted later
(``uploads.abort_lost``). Client failures are translated into StorageError
classes that name the bucket and the problem.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as bex
from botocore.config import Config

from pipeline import files

from . import layout
from .base import ObjectInfo, Storage, Upload
from .errors import StorageError, StorageMisconfigured, StorageUnavailable

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "Forbidden",
    "403",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
}
_TRANSIENT_CODES = {
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "XMinioServerNotInitialized",
}
_MISSING = {"404", "NoSuchKey", "NotFound"}
_CHUNK = 256 * 1024


def _root_cause(exc: BaseException) -> BaseException:
    """The botocore error under boto3's S3UploadFailedError / RetriesExceededError wrappers."""
    seen: BaseException = exc
    for _ in range(5):
        if isinstance(seen, bex.ClientError | bex.BotoCoreError):
            break
        inner = getattr(seen, "last_exception", None) or seen.__cause__ or seen.__context__
        if inner is None:
            break
        seen = inner
    return seen


def _code(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return str(err.get("Code") or status), status
    return "", 0


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(_CHUNK)
    finally:
        body.close()


class S3Storage(Storage):
    """Thread-safe: one boto3 client per process, shared by the stage's threads."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        max_attempts: int = 5,
        timeout_s: float = 10.0,
        multipart_threshold_bytes: int = 8 * 1024 * 1024,
        part_size_bytes: int = 8 * 1024 * 1024,
        concurrency: int = 8,
    ) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.description = f"s3://{bucket}/{self.prefix}".rstrip("/") + (
            f" at {endpoint_url}" if endpoint_url else ""
        )
        self._base = f"s3://{bucket}/{self.prefix}".rstrip("/")
        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=timeout_s,
            read_timeout=max(timeout_s, 30.0),
            max_pool_connections=max(10, 2 * concurrency),
            signature_version="s3v4",
            s3={"addressing_style": "path"} if endpoint_url else {},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        logging.getLogger("botocore.credentials").setLevel(logging.WARNING)  # not one line per process
        session = boto3.session.Session()
        self.client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._signer: Any = (
            session.client("s3", endpoint_url=public_endpoint_url, config=config)
            if public_endpoint_url
            else self.client
        )
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold_bytes,
            multipart_chunksize=part_size_bytes,
            max_concurrency=concurrency,
            use_threads=True,
        )

    # -- keys and errors ------------------------------------------------------------------------
    def full(self, key: str) -> str:
        layout.split(key)  # refuses anything outside work/ and output/
        return f"{self.prefix}/{key}" if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        if prefix:
            layout.split(prefix)
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def _short(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def uri(self, key: str) -> str:
        return f"{self._base}/{key}"

    def translate(self, exc: BaseException, what: str) -> StorageError:
        cause = _root_cause(exc)
        where = self.description
        if isinstance(cause, bex.NoCredentialsError | bex.PartialCredentialsError):
            return StorageMisconfigured(
                f"{what}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "a profile or a role)",
                where=where,
            )
        if isinstance(cause, bex.EndpointConnectionError | bex.ConnectionError | bex.HTTPClientError):
            return StorageUnavailable(f"{what}: unreachable: {cause}", where=where)
        if isinstance(cause, bex.IncompleteReadError | bex.ResponseStreamingError):  # a body cut off
            return StorageUnavailable(f"{what}: the answer was cut short: {cause}", where=where)
        code, status = _code(cause)
        if code == "NoSuchBucket":
            return StorageMisconfigured(f"{what}: bucket {self.bucket!r} does not exist", where=where)
        if code in _CREDENTIAL_CODES or status == 403:
            return StorageMisconfigured(
                f"{what}: credentials rejected or access denied ({code or status}): check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy",
                where=where,
            )
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return StorageUnavailable(f"{what}: {code or status}: {cause}", where=where)
        return StorageError(f"{what}: {type(cause).__name__}: {cause}", where=where)

    def _missing(self, exc: BaseException) -> bool:
        code, status = _code(_root_cause(exc))
        return code in _MISSING or (status == 404 and code != "NoSuchBucket")

    # -- the interface --------------------------------------------------------------------------
    def check(self) -> None:
        """The bucket exists, the credentials work, and a probe object can be written and removed."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001 - translated into a named storage error
            code, status = _code(_root_cause(exc))
            if status == 404 or code == "NoSuchBucket":
                raise StorageMisconfigured(
                    f"bucket {self.bucket!r} does not exist: create it, or fix CLIPLINE_STORAGE_URL",
                    where=self.description,
                ) from exc
            raise self.translate(exc, f"bucket {self.bucket!r} could not be reached") from exc
        probe = f"{self.prefix}/.probe/{uuid.uuid4().hex}" if self.prefix else f".probe/{uuid.uuid4().hex}"
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, f"a probe object could not be written to {self.bucket!r}") from exc

    def put_file(self, key: str, path: Path) -> None:
        """One PUT below the multipart threshold (a clip); above it, parts in parallel (final.mp4)."""
        try:
            if Path(path).stat().st_size < self.transfer.multipart_threshold:
                with open(path, "rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=self.full(key),
                        Body=body,
                        ContentType=layout.content_type(key),
                    )
                return
            self.client.upload_file(
                str(path),
                self.bucket,
                self.full(key),
                ExtraArgs={"ContentType": layout.content_type(key)},
                Config=self.transfer,
            )
        except FileNotFoundError:
            raise  # the local file is gone: not a storage problem
        except Exception as exc:  # noqa: BLE001 - translated into a named storage error
            raise self.translate(exc, f"upload of {key} failed") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.full(key), Body=data, ContentType=layout.content_type(key)
            )
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, f"upload of {key} failed") from exc

    def get_file(self, key: str, dest: Path) -> bool:
        """One streamed GET to a temporary name, then a rename (no transfer manager per file)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = files.temp_name(dest)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.full(key))["Body"]
            with open(tmp, "wb") as out:
                for chunk in _chunks(body):
                    out.write(chunk)
            os.replace(tmp, dest)
            return True
        except Exception as exc:  # noqa: BLE001
            if self._missing(exc):
                return False
            raise self.translate(exc, f"download of {key} failed") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.full(key))["Body"]
            return bytes(body.read())
        except Exception as exc:  # noqa: BLE001
            if self._missing(exc):
                return None
            raise self.translate(exc, f"read of {key} failed") from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            got = self.client.head_object(Bucket=self.bucket, Key=self.full(key))
        except Exception as exc:  # noqa: BLE001
            if self._missing(exc):
                return None
            raise self.translate(exc, f"head of {key} failed") from exc
        return ObjectInfo(
            key=key,
            size=int(got["ContentLength"]),
            etag=str(got.get("ETag", "")).strip('"'),
            content_type=str(got.get("ContentType") or layout.content_type(key)),
            modified=got.get("LastModified"),
        )

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Asks the store at once (so a failure is raised here, before any byte is sent)."""
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self.full(key), Range=f"bytes={start}-{end}")
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, f"read of {key} failed") from exc
        return _chunks(got["Body"])

    def copy(self, src: str, dst: str) -> bool:
        if self.head(src) is None:
            return False
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": self.full(src)},
                self.bucket,
                self.full(dst),
                Config=self.transfer,
            )
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, f"copy of {src} to {dst} failed") from exc
        return True

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.full(key))
        except Exception as exc:  # noqa: BLE001
            if not self._missing(exc):
                raise self.translate(exc, f"delete of {key} failed") from exc

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._full_prefix(prefix)
        )
        for page in pages:
            yield from page.get("Contents", [])

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        try:
            batch: list[dict[str, str]] = []
            for obj in self._objects(prefix):
                batch.append({"Key": obj["Key"]})
                if len(batch) == 1000:
                    count += self._delete_batch(batch)
                    batch = []
            if batch:
                count += self._delete_batch(batch)
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, f"delete of {prefix} failed") from exc
        return count

    def _delete_batch(self, batch: list[dict[str, str]]) -> int:
        got = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = got.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageUnavailable(
                f"{len(errors)} object(s) not deleted, e.g. {first.get('Key')}: {first.get('Code')}",
                where=self.description,
            )
        return len(batch)

    def prefix_size(self, prefix: str) -> int:
        try:
            return sum(int(o.get("Size", 0)) for o in self._objects(prefix))
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, f"listing of {prefix} failed") from exc

    def presigned_url(self, key: str, ttl_s: int) -> str | None:
        url: str = self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.full(key)}, ExpiresIn=int(ttl_s)
        )
        return url

    def incomplete_uploads(self, prefix: str = "") -> list[Upload]:
        out: list[Upload] = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._full_prefix(prefix)
            )
            for page in pages:
                for up in page.get("Uploads", []):
                    full = str(up["Key"])
                    if self.prefix and not full.startswith(self.prefix + "/"):
                        continue
                    out.append(Upload(self._short(full), str(up["UploadId"]), up.get("Initiated")))
        except Exception as exc:  # noqa: BLE001
            raise self.translate(exc, "listing of incomplete uploads failed") from exc
        return out

    def abort_upload(self, upload: Upload) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.full(upload.key), UploadId=upload.upload_id
            )
        except Exception as exc:  # noqa: BLE001
            code, _ = _code(_root_cause(exc))
            if code != "NoSuchUpload":
                raise self.translate(exc, f"abort of the upload of {upload.key} failed") from exc
