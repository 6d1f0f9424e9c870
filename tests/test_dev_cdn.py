"""The loopback CDN other tests stand on: ranges, faults, the video API, accounting."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clipline.dev.cdn import LoopbackCDN


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[LoopbackCDN]:
    seg = tmp_path / "hls" / "v1"
    seg.mkdir(parents=True)
    (seg / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2,\nseg_00000.ts\n#EXT-X-ENDLIST\n")
    (seg / "seg_00000.ts").write_bytes(bytes(range(256)) * 40)
    with LoopbackCDN(tmp_path, api_key="k", index_id="idx") as server:
        yield server


def test_ranges_and_accounting(cdn: LoopbackCDN) -> None:
    url = cdn.url("hls/v1/seg_00000.ts")
    full = httpx.get(url)
    assert full.status_code == 200 and len(full.content) == 10240
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == bytes(range(10, 20))
    assert part.headers["content-range"] == "bytes 10-19/10240"
    tail = httpx.get(url, headers={"Range": "bytes=-6"})
    assert tail.content == bytes(range(250, 256))
    assert httpx.get(url, headers={"Range": "bytes=99999-"}).status_code == 416
    assert cdn.total_bytes("/hls/v1/seg") == 10240 + 10 + 6
    assert httpx.get(cdn.url("hls/../../etc/passwd")).status_code == 404


def test_video_api_needs_the_key_and_counts_calls(cdn: LoopbackCDN) -> None:
    url = f"{cdn.api_url}/indexes/idx/videos/v1"
    assert httpx.get(url).status_code == 401
    ok = httpx.get(url, headers={"x-api-key": "k"})
    assert ok.json()["hls"]["video_url"] == cdn.hls_url("v1")
    assert httpx.get(f"{cdn.api_url}/indexes/idx/videos/v9", headers={"x-api-key": "k"}).status_code == 404
    cdn.set_gone("v1")
    assert httpx.get(url, headers={"x-api-key": "k"}).status_code == 404
    assert httpx.get(cdn.hls_url("v1")).status_code == 404
    assert cdn.api_calls["v1"] == 3


def test_injected_faults(cdn: LoopbackCDN) -> None:
    cdn.fail_next("/hls/v1/", 503, times=2)
    assert [httpx.get(cdn.hls_url("v1")).status_code for _ in range(3)] == [503, 503, 200]
    cdn.fail_next("/v1.3/", 429, times=1, retry_after_s=1.5)
    limited = httpx.get(f"{cdn.api_url}/indexes/idx/videos/v1", headers={"x-api-key": "k"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1.5"
    cdn.corrupt("/hls/v1/seg")
    body = httpx.get(cdn.url("hls/v1/seg_00000.ts")).content
    assert len(body) == 10240 and body != bytes(range(256)) * 40
    cdn.reset_faults()
    cdn.stall("/hls/v1/seg", 5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(cdn.url("hls/v1/seg_00000.ts"), timeout=0.3)
    # a request stalled when the faults are cleared ends then (it never outlives its test), and is counted
    cdn.reset_counters()
    started = time.monotonic()
    ended: list[BaseException] = []

    def fetch() -> None:
        try:
            httpx.get(cdn.url("hls/v1/seg_00000.ts"), timeout=10)
        except httpx.HTTPError as exc:  # headers came, the body never did: the connection ended
            ended.append(exc)

    stalled = threading.Thread(target=fetch)
    stalled.start()
    while cdn.in_flight < 2 and time.monotonic() - started < 5:  # the one given up on above is held too
        time.sleep(0.01)
    cdn.reset_faults()
    stalled.join(5)
    assert not stalled.is_alive() and time.monotonic() - started < 3
    assert [type(e) for e in ended] == [httpx.RemoteProtocolError]
    while cdn.in_flight and time.monotonic() - started < 5:  # the one given up on ends in its own thread
        time.sleep(0.01)
    assert cdn.count("/hls/v1/seg") == 2  # with the one whose client gave up above: both ended at the reset
    assert httpx.get(cdn.url("hls/v1/seg_00000.ts"), timeout=1).content == bytes(range(256)) * 40


def test_a_slowed_path_is_answered_whole_late_or_at_the_reset(cdn: LoopbackCDN) -> None:
    cdn.slow_down("/hls/v1/seg", 0.5)
    started = time.monotonic()
    assert httpx.get(cdn.url("hls/v1/seg_00000.ts"), timeout=5).content == bytes(range(256)) * 40
    assert time.monotonic() - started >= 0.5
    cdn.slow_down("/hls/v1/seg", 30)
    got: list[bytes] = []
    slowed = threading.Thread(target=lambda: got.append(httpx.get(cdn.url("hls/v1/seg_00000.ts")).content))
    slowed.start()
    while not cdn.held("/hls/v1/") and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert cdn.held("/hls/v1/") == ["/hls/v1/seg_00000.ts"] and cdn.held("/hls/v2/") == []
    cdn.reset_faults()
    slowed.join(5)
    assert got == [bytes(range(256)) * 40] and time.monotonic() - started < 5
    assert cdn.held() == []


def test_peak_concurrency_is_measured(cdn: LoopbackCDN) -> None:
    cdn.latency_ms = 200
    threads = [threading.Thread(target=httpx.get, args=(cdn.hls_url("v1"),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cdn.peak_in_flight_for("/hls/") == 3


def test_a_request_answered_is_counted_even_when_its_server_thread_lags(
    cdn: LoopbackCDN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI once saw ``cdn.requests`` empty right after a playlist was fetched: the server thread records a
    request after writing its last byte, and the client had read the answer first. The lag is made
    certain here: each server thread waits 0.3 s after answering, before it records."""
    import clipline.dev.cdn as cdn_module

    answer = cdn_module._Handler._respond

    def lagging(self: cdn_module._Handler, path: str, head: bool) -> tuple[int, int]:
        out = answer(self, path, head)
        self.wfile.flush()
        time.sleep(0.3)
        return out

    monkeypatch.setattr(cdn_module._Handler, "_respond", lagging)
    assert httpx.get(cdn.url("hls/v1/index.m3u8")).status_code == 200
    assert [r.path for r in cdn.requests] == ["/hls/v1/index.m3u8"]
    assert httpx.get(cdn.url("hls/v1/seg_00000.ts")).status_code == 200
    assert cdn.count("/hls/v1/") == 2 and cdn.total_bytes("/hls/v1/seg") == 10240
