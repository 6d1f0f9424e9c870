"""Bodies in a Content-Encoding and byte ranges a server ignores, against a real loopback HTTP server:
the size cap bounds the bytes produced and the memory used, whatever the server sends."""

from __future__ import annotations

import resource
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from pipeline import fetch, netguard
from pipeline.errors import SourceInvalid, SourceUnavailable
from tests.loopback import serving

MiB = 2**20
POLICY = netguard.Policy(allow_private=True)
LIMITS = fetch.Limits(timeout_s=5.0, deadline_s=20.0, max_bytes=MiB)  # a 1 MiB cap


def deflated(data_mib: int, wbits: int) -> bytes:
    """``data_mib`` MiB of zeros compressed (wbits 31: gzip, 15: zlib, -15: raw deflate), never held whole."""
    z = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(MiB)
    return b"".join(z.compress(block) for _ in range(data_mib)) + z.flush()


def squeeze(data: bytes, wbits: int = 31) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return z.compress(data) + z.flush()


TEXT = b"".join(b"line %d of a playlist\n" % i for i in range(40_000))  # ~0.9 MiB, under the cap
BOMB = deflated(400, 31)  # 400 MiB of zeros gzipped: ~400 KB, under the cap on the wire
#: path -> (status, headers, body)
ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/stacked": (200, {"Content-Encoding": "gzip, gzip"}, squeeze(BOMB)),  # < 1 KB on the wire
    "/bomb": (200, {"Content-Encoding": "gzip"}, BOMB),
    "/gzip": (200, {"Content-Encoding": "gzip"}, squeeze(TEXT)),
    "/x-gzip": (200, {"Content-Encoding": "x-gzip"}, squeeze(TEXT)),
    "/deflate": (200, {"Content-Encoding": "deflate"}, squeeze(TEXT, 15)),
    "/raw-deflate": (200, {"Content-Encoding": "deflate"}, squeeze(TEXT, -15)),
    "/identity": (200, {"Content-Encoding": "identity"}, TEXT),
    "/br": (200, {"Content-Encoding": "br"}, b"\x1b\x03\x00\xf8\xa5\x40\x02"),
    "/corrupt": (200, {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage, not deflate at all"),
    "/cut": (200, {"Content-Encoding": "gzip"}, squeeze(TEXT)[:5000]),
}
#: The Accept-Encoding header of each request, by path.
SEEN: dict[str, str] = {}


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        SEEN[path] = self.headers.get("Accept-Encoding", "")
        if path.startswith("/file/"):  # a plain file that ignores Range: 3 MiB, byte i is i % 251
            status, headers, body = 200, {}, bytes(i % 251 for i in range(3 * MiB))
        else:
            status, headers, body = ROUTES[path]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serving(_Server) as url:
        yield url


def peak_mib(read: Any) -> tuple[BaseException | None, float, float]:
    """(what ``read()`` raised, its peak of traced Python memory in MiB, its growth of the process's max RSS
    in MiB)."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    raised = None
    try:
        read()
    except Exception as exc:  # noqa: BLE001 - returned to the test
        raised = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return raised, peak / MiB, rss_grown


def test_stacked_codings_are_refused_before_anything_is_inflated(base: str) -> None:
    raised, peak, rss = peak_mib(lambda: fetch.get(f"{base}/stacked", policy=POLICY, limits=LIMITS))
    assert isinstance(raised, SourceInvalid), raised
    assert f"{base}/stacked" in str(raised) and "'gzip, gzip'" in str(raised), raised
    assert peak < 8 and rss < 64, (peak, rss)


def test_a_gzip_bomb_stops_at_the_cap_with_memory_bounded(base: str) -> None:
    raised, peak, rss = peak_mib(lambda: fetch.get(f"{base}/bomb", policy=POLICY, limits=LIMITS))
    assert isinstance(raised, SourceUnavailable), raised
    assert "CLIPLINE_MAX_SEGMENT_BYTES" in str(raised) and f"{base}/bomb" in str(raised), raised
    assert peak < 8 and rss < 64, (peak, rss)  # a 1 MiB cap; httpx alone inflated 64 KiB to 64 MiB at once


def test_a_gzip_bomb_download_stops_at_the_cap(base: str, tmp_path: Path) -> None:
    def read() -> None:
        fetch.download(f"{base}/bomb", tmp_path / "seg.ts", policy=POLICY, limits=LIMITS)

    raised, peak, _ = peak_mib(read)
    assert isinstance(raised, SourceUnavailable) and "CLIPLINE_MAX_SEGMENT_BYTES" in str(raised), raised
    assert peak < 8 and not (tmp_path / "seg.ts").exists()


@pytest.mark.parametrize("path", ["/gzip", "/x-gzip", "/deflate", "/raw-deflate", "/identity"])
def test_bodies_in_the_codings_asked_for_are_read_whole(base: str, path: str) -> None:
    assert fetch.get(f"{base}{path}", policy=POLICY, limits=LIMITS).content == TEXT
    assert SEEN[path] == "gzip, deflate"


def test_a_gzip_download_is_written_decoded(base: str, tmp_path: Path) -> None:
    got = fetch.download(f"{base}/gzip", tmp_path / "p.m3u8", policy=POLICY, limits=LIMITS)
    assert (tmp_path / "p.m3u8").read_bytes() == TEXT and got == len(TEXT)


def test_a_coding_not_asked_for_is_refused_naming_it(base: str) -> None:
    with pytest.raises(SourceInvalid, match=r"/br\b.*Content-Encoding 'br'"):
        fetch.get(f"{base}/br", policy=POLICY, limits=LIMITS)


@pytest.mark.parametrize("path", ["/corrupt", "/cut"])
def test_a_broken_gzip_body_is_refused(base: str, path: str) -> None:
    with pytest.raises(SourceInvalid, match=f"{path}.*gzip"):
        fetch.get(f"{base}{path}", policy=POLICY, limits=LIMITS)


def test_a_range_a_server_ignores_is_cut_from_its_body(base: str, tmp_path: Path) -> None:
    dest = tmp_path / "part.ts"
    got = fetch.download(f"{base}/file/a", dest, policy=POLICY, limits=LIMITS, byte_range=(1000, 1999))
    assert dest.read_bytes() == bytes(i % 251 for i in range(1000, 2000))
    assert 2000 <= got <= 2000 + 64 * 1024  # the bytes skipped were read too, up to one read's worth past
    assert SEEN["/file/a"] == "identity"  # a range is of the file's own bytes


def test_a_range_a_server_ignores_is_not_read_past_the_cap(base: str, tmp_path: Path) -> None:
    """The skip counts: bytes 2 MiB..2 MiB+1000 of a server that sends the whole file from byte 0 would be
    2 MiB read under a 1 MiB cap."""
    rng = (2 * MiB, 2 * MiB + 999)
    with pytest.raises(SourceUnavailable, match="ignored Range.*CLIPLINE_MAX_SEGMENT_BYTES"):
        fetch.download(f"{base}/file/b", tmp_path / "b.ts", policy=POLICY, limits=LIMITS, byte_range=rng)
    assert not (tmp_path / "b.ts").exists()
