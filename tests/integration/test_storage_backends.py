"""The storage interface against both backends: the file system and S3 (moto's server on loopback).

The S3 cases speak the real S3 HTTP API through boto3 to moto's standalone
server: signing, multipart uploads, ranges, presigned URLs, credential checks.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clipline.dev.s3 import LoopbackS3, _free_port
from pipeline.storage import (
    FileStorage,
    Storage,
    StorageError,
    StorageMisconfigured,
    StorageUnavailable,
    layout,
)
from pipeline.storage.s3 import S3Storage
from pipeline.storage.uploads import abort_lost

pytestmark = pytest.mark.integration

#: A low multipart threshold, so small test files go up as multipart uploads (boto3's transfer manager
#: makes parts of at least 5 MiB, so these are uploads of one part).
PART = 16 * 1024


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with LoopbackS3("backend-test", prefix="t", log=log) as server:
        yield server


def s3_storage(server: LoopbackS3, **kw: object) -> S3Storage:
    for k, v in server.env().items():
        if k.startswith("AWS_"):
            os.environ[k] = v
    opts: dict[str, object] = {
        "endpoint_url": server.endpoint_url,
        "multipart_threshold_bytes": 2 * PART,
        "part_size_bytes": PART,
        "timeout_s": 5.0,
    }
    opts.update(kw)
    return S3Storage(server.bucket, server.prefix, **opts)  # type: ignore[arg-type]


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return FileStorage({"work": tmp_path / "w", "output": tmp_path / "o"})
    server: LoopbackS3 = request.getfixturevalue("s3_server")
    server.reset()
    return s3_storage(server)


def blob(size: int, seed: int = 1) -> bytes:
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def test_round_trip_and_missing(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(blob(5000))
    key = layout.clip("job-1", 3)
    assert storage.head(key) is None and storage.get_bytes(key) is None
    assert (
        storage.get_file(key, tmp_path / "nothing.mp4") is False and not (tmp_path / "nothing.mp4").exists()
    )

    storage.put_file(key, src)
    info = storage.head(key)
    assert info is not None and info.size == 5000 and info.content_type == "video/mp4" and info.etag
    dest = tmp_path / "down" / "0003.mp4"
    assert storage.get_file(key, dest) is True
    assert dest.read_bytes() == src.read_bytes()
    assert list(dest.parent.iterdir()) == [dest]  # no temporary file left behind

    storage.put_bytes(layout.clip_record("job-1", 3), b'{"outcome": "ok"}')
    assert storage.get_bytes(layout.clip_record("job-1", 3)) == b'{"outcome": "ok"}'


def test_multipart_upload_is_whole_and_leaves_no_upload_open(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "final.mp4"
    data = blob(5 * PART + 123)
    src.write_bytes(data)
    key = layout.output("job-2", layout.FINAL)
    storage.put_file(key, src)
    assert storage.get_bytes(key) == data
    assert storage.incomplete_uploads() == []
    if isinstance(storage, S3Storage):  # it really went up in parts: the ETag of a multipart object
        info = storage.head(key)
        assert info is not None and info.etag.endswith("-1")


def test_retry_of_a_write_is_idempotent(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "c.mp4"
    src.write_bytes(blob(3 * PART, seed=2))
    key = layout.clip("job-3", 0)
    storage.put_file(key, src)
    first = storage.head(key)
    storage.put_file(key, src)  # a redelivered clip publishes the same bytes again
    assert storage.get_bytes(key) == src.read_bytes()
    assert storage.prefix_size(layout.job_work("job-3")) == 3 * PART
    assert first is not None


def test_ranges(storage: Storage) -> None:
    data = blob(100_000, seed=3)
    key = layout.output("job-4", layout.FINAL)
    storage.put_bytes(key, data)
    assert b"".join(storage.read_range(key, 0, 99)) == data[:100]
    assert b"".join(storage.read_range(key, 99_990, 99_999)) == data[99_990:]
    assert b"".join(storage.read_range(key, 1234, 77_777)) == data[1234:77_778]


def test_copy_delete_and_sizes(storage: Storage) -> None:
    storage.put_bytes(layout.output("job-5", layout.FINAL), b"v" * 10)
    storage.put_bytes(layout.output("job-5", layout.REPORT), b"{}")
    storage.put_bytes(layout.clip("job-5", 0), b"c" * 7)
    storage.put_bytes(layout.clip("job-55", 0), b"other job")
    kept = layout.output("job-5", layout.attempt_name(layout.FINAL, 1))
    assert storage.copy(layout.output("job-5", layout.FINAL), kept) is True
    assert storage.copy(layout.output("job-5", layout.POSTER), kept) is False
    assert storage.get_bytes(kept) == b"v" * 10
    assert storage.prefix_size(layout.job_output("job-5")) == 22
    assert storage.delete_prefix(layout.job_work("job-5")) == 1
    assert storage.head(layout.clip("job-5", 0)) is None
    assert storage.get_bytes(layout.clip("job-55", 0)) == b"other job"  # a prefix is a job, not a string
    storage.delete(kept)
    storage.delete(kept)  # deleting what is gone is not an error
    assert storage.head(kept) is None


def test_presigned_url_serves_the_object(s3_server: LoopbackS3) -> None:
    s3_server.reset()
    st = s3_storage(s3_server)
    key = layout.output("job-6", layout.POSTER)
    st.put_bytes(key, b"\xff\xd8jpeg")
    url = st.presigned_url(key, 600)
    assert url is not None and "X-Amz-Expires=600" in url and "X-Amz-Signature=" in url
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == b"\xff\xd8jpeg"


def test_file_backend_has_no_presigned_url_and_refuses_escapes(tmp_path: Path) -> None:
    st = FileStorage({"work": tmp_path / "w", "output": tmp_path / "o"})
    assert st.presigned_url(layout.output("j", layout.FINAL), 60) is None
    with pytest.raises(ValueError):
        st.path("work/../../etc/passwd")


def test_an_upload_is_invisible_until_complete(tmp_path: Path) -> None:
    # Given an S3 server where each part takes 0.4 s
    with LoopbackS3("slow", prefix="", part_delay_ms=400) as server:
        st = s3_storage(server, concurrency=1)
        src = tmp_path / "big.mp4"
        src.write_bytes(blob(4 * PART))
        key = layout.output("job-7", layout.FINAL)
        # When a multipart upload is under way
        t = threading.Thread(target=st.put_file, args=(key, src))
        t.start()
        deadline = time.monotonic() + 20
        while not st.incomplete_uploads() and time.monotonic() < deadline:
            time.sleep(0.02)
        # Then nothing is visible under the key until it completes
        assert [u.key for u in st.incomplete_uploads()] == [key]
        assert st.head(key) is None
        t.join(30)
        info = st.head(key)
        assert info is not None and info.size == 4 * PART
        assert st.incomplete_uploads() == []


def test_lost_uploads_are_aborted(s3_server: LoopbackS3) -> None:
    # Given two uploads started and never completed (their workers died): one of an ended job
    s3_server.reset()
    st = s3_storage(s3_server)
    for job in ("ended-job", "live-job"):
        full = st.full(layout.clip(job, 1))
        up = st.client.create_multipart_upload(Bucket=st.bucket, Key=full)
        st.client.upload_part(
            Bucket=st.bucket, Key=full, UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 10
        )
    assert len(st.incomplete_uploads()) == 2
    # When the lost ones are aborted
    gone = abort_lost(st, lambda job: job == "ended-job", older_than_s=0)
    # Then only the ended job's upload is gone
    assert [a.upload.key for a in gone] == [layout.clip("ended-job", 1)]
    assert [u.key for u in st.incomplete_uploads()] == [layout.clip("live-job", 1)]


def test_check_names_a_missing_bucket(s3_server: LoopbackS3) -> None:
    st = s3_storage(s3_server)
    st.bucket = "no-such-bucket"
    with pytest.raises(StorageMisconfigured, match="bucket 'no-such-bucket' does not exist"):
        st.check()


def test_check_names_an_unreachable_store(s3_server: LoopbackS3) -> None:
    st = s3_storage(s3_server, endpoint_url=f"http://127.0.0.1:{_free_port()}", max_attempts=1, timeout_s=1.0)
    with pytest.raises(StorageUnavailable, match="unreachable"):
        st.check()
    with pytest.raises(StorageUnavailable, match="unreachable"):
        st.put_bytes(layout.clip("j", 0), b"x")


def test_check_names_rejected_credentials(tmp_path: Path) -> None:
    with LoopbackS3("authed", prefix="p", auth=True) as server:
        good = s3_storage(server)
        good.check()  # the server's own key works
        good.put_bytes(layout.output("job-8", layout.REPORT), b"{}")
        os.environ["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
        bad = S3Storage(server.bucket, server.prefix, endpoint_url=server.endpoint_url, max_attempts=1)
        with pytest.raises(StorageMisconfigured, match="credentials rejected"):
            bad.check()


def test_check_passes_and_file_check_names_an_unwritable_dir(s3_server: LoopbackS3, tmp_path: Path) -> None:
    s3_server.reset()
    s3_storage(s3_server).check()
    (tmp_path / "a-file").write_text("not a directory")
    st = FileStorage({"work": tmp_path / "w", "output": tmp_path / "a-file" / "out"})
    with pytest.raises(StorageError, match="output directory .* is not writable"):
        st.check()
