"""Outside audit, fixed since: aborting lost multipart uploads in a shared bucket (no prefix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipline.dev.s3 import LoopbackS3
from pipeline.storage import uploads
from pipeline.storage.s3 import S3Storage


def test_lost_uploads_are_aborted_beside_another_applications_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a bucket used without a prefix, another application's old multipart upload made abort_lost
    raise (not a work/ or output/ key), so clipline's own lost upload of an ended job is never aborted."""
    with LoopbackS3("shared", prefix="", log=tmp_path / "moto.log") as server:
        for name, value in server.env().items():
            if name.startswith("AWS_"):
                monkeypatch.setenv(name, value)
        storage = S3Storage(
            server.bucket, "", endpoint_url=server.endpoint_url, max_attempts=1, timeout_s=5.0
        )
        s3 = server.client()
        s3.create_multipart_upload(Bucket=server.bucket, Key="backups/nightly.tar")  # not clipline's
        s3.create_multipart_upload(Bucket=server.bucket, Key="work/gone-1/clips/0001.mp4")  # a lost worker's

        aborted = uploads.abort_lost(storage, lambda job_id: True, older_than_s=6 * 3600)

        left = {u["Key"] for u in s3.list_multipart_uploads(Bucket=server.bucket).get("Uploads", [])}
        assert [a.upload.key for a in aborted] == ["work/gone-1/clips/0001.mp4"]
        assert left == {"backups/nightly.tar"}  # the other application's upload is not clipline's to abort
