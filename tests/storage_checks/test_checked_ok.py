"""Outside audit G: things checked and found correct (these pass)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.storage import StorageUnavailable

from .test_s3_hostile import server, store  # noqa: F401 - the fixture

__all__ = ["server"]


def test_slowdown_503_is_transient(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url, handler = server
    handler.mode = "slowdown"
    with pytest.raises(StorageUnavailable):
        store(url).get_file("work/j1/clips/0000.mp4", tmp_path / "c.mp4")
    assert not (tmp_path / "c.mp4").exists()


def test_multipart_etag_quotes_are_stripped(server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url, _ = server
    info = store(url).head("work/j1/clips/0000.mp4")
    assert info is not None and info.etag == "0123456789abcdef-3" and info.size == 100_000


def test_a_truncated_get_bytes_is_transient(server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """get_bytes (read() without a size) sees urllib3's IncompleteRead as ResponseStreamingError,
    an HTTPClientError: translated to StorageUnavailable (unlike get_file, see test_s3_hostile)."""
    url, _ = server
    with pytest.raises(StorageUnavailable):
        store(url).get_bytes("work/j1/clips/0000.json")
