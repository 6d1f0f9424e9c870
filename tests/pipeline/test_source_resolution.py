"""Source resolution reports hostile sources as Source errors, so the plan stage records them and goes
on: a master playlist whose rendition URL has a port out of range, a video API answer nested too deep
or naming such a URL (each was a bare ValueError or RecursionError that crashed the plan actor)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.loopback import serving
from tests.stubs import stub_context

FILES: dict[str, bytes] = {
    "/master.m3u8": b'#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=320x180,CODECS="avc1.64001f"\n'
    b"http://127.0.0.1:99999/v.m3u8\n",
    "/v1/indexes/i/videos/deep": b'{"hls": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "/v1/indexes/i/videos/badport": b'{"hls": {"video_url": "http://127.0.0.1:99999/p.m3u8"}}',
}


class _Files(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = FILES.get(self.path.split("?")[0], b"")
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def base() -> Iterator[str]:
    with serving(_Files) as url:
        yield url


def test_a_rendition_with_an_invalid_port_is_reported_by_prewarm(base: str, tmp_path: Path) -> None:
    ctx = stub_context(tmp_path, CLIPLINE_ALLOW_PRIVATE_NETWORKS="true")
    got = ctx.resolver.prewarm("job-1", {"v1": f"{base}/master.m3u8"}, 180)
    assert got["v1"].startswith("Source") and "99999" in got["v1"], got


@pytest.mark.parametrize("video_id", ["deep", "badport"])
def test_a_hostile_video_api_answer_is_reported_by_prewarm(base: str, tmp_path: Path, video_id: str) -> None:
    ctx = stub_context(
        tmp_path,
        CLIPLINE_ALLOW_PRIVATE_NETWORKS="true",
        TWELVELABS_API_URL=f"{base}/v1",
        TWELVELABS_INDEX_ID="i",
        TWELVELABS_API_KEY="k",
    )
    got = ctx.resolver.prewarm("job-1", {video_id: None}, 180)
    assert got[video_id].startswith("Source"), got
