"""Outside audit G (each test failed on the code before its fix).

an S3 endpoint on loopback that answers odd things (a tiny hand-written HTTP server)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.storage import StorageError, StorageUnavailable
from pipeline.storage.s3 import S3Storage

BODY = b"x" * 100_000


class Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "truncate"

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("ETag", '"0123456789abcdef-3"')
        self.end_headers()

    def do_GET(self) -> None:
        if self.mode == "slowdown":
            err = b'<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Reduce</Message></Error>'
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(err)))
            self.end_headers()
            self.wfile.write(err)
            return
        # a GET cut short: the promised length, a tenth of the bytes, then the connection closes
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("ETag", '"abc"')
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(BODY[:10_000])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[Hostile]]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    handler = type("H", (Hostile,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def store(url: str) -> S3Storage:
    return S3Storage("bucket", "p", endpoint_url=url, max_attempts=2, timeout_s=5)


def test_a_truncated_get_of_a_clip_is_a_transient_storage_error(
    server: tuple[str, type[Hostile]], tmp_path: Path
) -> None:
    """A GET whose body ends before its Content-Length (a connection cut mid-download) makes
    S3Storage.get_file raise a plain, permanent StorageError: botocore raises IncompleteReadError
    (a BotoCoreError, not an HTTPClientError), which S3Storage.translate does not recognise, so
    ``transient`` is False. The assembler (assembly.py: ``exc.transient and not last_attempt``) then
    fails the job at once instead of retrying, although RELIABILITY/README say a storage error
    mid-job is transient (unreachable, timed out: retried). Right: StorageUnavailable, and no file
    left at dest."""
    url, _ = server
    dest = tmp_path / "clip.mp4"
    with pytest.raises(StorageError) as got:
        store(url).get_file("work/j1/clips/0000.mp4", dest)
    assert not dest.exists()
    assert isinstance(got.value, StorageUnavailable), f"{type(got.value).__name__}: {got.value}"
