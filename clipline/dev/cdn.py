"""A loopback CDN for tests, the demo and benchmarks: static HLS files, a TwelveLabs-style video API,
latency and bandwidth shaping, fault injection, and byte/concurrency accounting. 127.0.0.1 only.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4a": "audio/mp4",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".json": "application/json",
}
API_RE = re.compile(r"^/v1\.3/indexes/([^/]+)/videos/([^/]+)$")
CHUNK = 16 * 1024


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    bytes: int
    started: float
    ended: float
    query: str = ""


@dataclass
class _Fault:
    status: int
    times: int
    retry_after_s: float | None


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    gone: set[str] = field(default_factory=set)
    fail: dict[str, _Fault] = field(default_factory=dict)
    stalls: dict[str, float] = field(default_factory=dict)
    #: Paths answered whole, but only after a wait (a slow origin, not a dead one): path prefix -> s.
    slow: dict[str, float] = field(default_factory=dict)
    #: Paths of the requests a slow-down holds right now (one entry per request).
    held: list[str] = field(default_factory=list)
    #: Set by ``reset_faults`` and ``stop``: requests stalled until then end at once (``reset_faults``
    #: puts a new event in its place for later stalls).
    release: threading.Event = field(default_factory=threading.Event)
    corrupt: set[str] = field(default_factory=set)
    bytes_served: dict[str, int] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    api_calls: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    hls_in_flight: int = 0
    peak_hls_in_flight: int = 0
    #: Requests a stall holds right now (their body never comes; ``held`` lists the slowed ones).
    stalled: int = 0
    #: Notified each time a request is recorded, on ``lock``.
    recorded: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.recorded = threading.Condition(self.lock)

    def settle(self, timeout: float = 2.0) -> None:
        """Wait (with ``lock`` held) until every request not parked by a fault is recorded.

        A request is recorded after its last byte is written, so a client may read a whole answer
        before the server thread has counted it: accounting read right after a call would miss it."""
        self.recorded.wait_for(lambda: self.in_flight <= self.stalled + len(self.held), timeout)


class LoopbackCDN:
    def __init__(
        self,
        root: Path,
        *,
        api_key: str = "demo-key",
        index_id: str = "demo-index",
        latency_ms: int = 0,
        bandwidth_bps: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.root = Path(root).resolve()
        self.api_key, self.index_id = api_key, index_id
        self.latency_ms, self.bandwidth_bps = latency_ms, bandwidth_bps
        self._host, self._port = host, port
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> LoopbackCDN:
        cdn = self

        class Handler(_Handler):
            server_cdn = cdn

        self._server = _QuietServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-cdn", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._state.lock:
            self._state.release.set()  # stalled requests end now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackCDN:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the CDN first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1.3"

    def hls_url(self, video_id: str) -> str:
        return f"{self.base_url}/hls/{video_id}/index.m3u8"

    def url(self, relpath: str) -> str:
        return f"{self.base_url}/{relpath.lstrip('/')}"

    # -- faults ------------------------------------------------------------
    def set_gone(self, video_id: str, gone: bool = True) -> None:
        with self._state.lock:
            (self._state.gone.add if gone else self._state.gone.discard)(video_id)

    def fail_next(
        self, path_prefix: str, status: int, times: int, retry_after_s: float | None = None
    ) -> None:
        with self._state.lock:
            self._state.fail[path_prefix] = _Fault(status, times, retry_after_s)

    def stall(self, path_prefix: str, seconds: float) -> None:
        with self._state.lock:
            self._state.stalls[path_prefix] = seconds

    def slow_down(self, path_prefix: str, seconds: float) -> None:
        """Answer requests under ``path_prefix`` whole, but ``seconds`` late (or at ``reset_faults``)."""
        with self._state.lock:
            self._state.slow[path_prefix] = seconds

    def held(self, path_prefix: str = "") -> list[str]:
        """The paths under ``path_prefix`` of the requests ``slow_down`` holds right now."""
        with self._state.lock:
            return [p for p in self._state.held if p.startswith(path_prefix)]

    def corrupt(self, path_prefix: str) -> None:
        with self._state.lock:
            self._state.corrupt.add(path_prefix)

    def reset_faults(self) -> None:
        """Clear every fault; requests stalled right now end at once (none outlives the fault)."""
        with self._state.lock:
            self._state.gone.clear()
            self._state.fail.clear()
            self._state.stalls.clear()
            self._state.slow.clear()
            self._state.corrupt.clear()
            self._state.release.set()
            self._state.release = threading.Event()

    # -- accounting --------------------------------------------------------
    @property
    def bytes_served(self) -> dict[str, int]:
        with self._state.lock:
            self._state.settle()
            return dict(self._state.bytes_served)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._state.lock:
            self._state.settle()
            return list(self._state.requests)

    @property
    def api_calls(self) -> Counter[str]:
        with self._state.lock:
            self._state.settle()
            return Counter(self._state.api_calls)

    @property
    def in_flight(self) -> int:
        return self._state.in_flight

    @property
    def peak_in_flight(self) -> int:
        return self._state.peak_in_flight

    def peak_in_flight_for(self, prefix: str = "/hls/") -> int:
        """Peak concurrent requests under /hls/ (the only prefix tracked separately)."""
        assert prefix == "/hls/"
        return self._state.peak_hls_in_flight

    def total_bytes(self, prefix: str = "") -> int:
        with self._state.lock:
            self._state.settle()
            return sum(n for p, n in self._state.bytes_served.items() if p.startswith(prefix))

    def count(self, prefix: str = "") -> int:
        with self._state.lock:
            self._state.settle()
            return sum(1 for r in self._state.requests if r.path.startswith(prefix))

    def reset_counters(self) -> None:
        with self._state.lock:
            self._state.bytes_served.clear()
            self._state.requests.clear()
            self._state.api_calls.clear()
            self._state.peak_in_flight = self._state.in_flight
            self._state.peak_hls_in_flight = self._state.hls_in_flight


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (ffmpeg does, after reading what it needs) are normal here, not errors."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _video_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "hls" else None


class _Handler(BaseHTTPRequestHandler):
    server_cdn: LoopbackCDN
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request logs
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    # ------------------------------------------------------------------
    def _serve(self, *, head: bool) -> None:
        cdn, st = self.server_cdn, self.server_cdn._state
        path = unquote(urlsplit(self.path).path)
        hls = path.startswith("/hls/")
        started = time.monotonic()
        with st.lock:
            st.in_flight += 1
            st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            if hls:
                st.hls_in_flight += 1
                st.peak_hls_in_flight = max(st.peak_hls_in_flight, st.hls_in_flight)
        status, sent = 500, 0
        try:
            if cdn.latency_ms:
                time.sleep(cdn.latency_ms / 1000)
            status, sent = self._respond(path, head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with st.lock:
                st.in_flight -= 1
                if hls:
                    st.hls_in_flight -= 1
                st.bytes_served[path] = st.bytes_served.get(path, 0) + sent
                st.requests.append(
                    RequestRecord(
                        self.command, path, status, sent, started, time.monotonic(), urlsplit(self.path).query
                    )
                )
                st.recorded.notify_all()

    def _respond(self, path: str, head: bool) -> tuple[int, int]:
        cdn, st = self.server_cdn, self.server_cdn._state
        api = API_RE.match(path)
        with st.lock:
            if api:  # every call to the video API counts, answered or refused
                st.api_calls[api.group(2)] += 1
            fault = next((f for p, f in st.fail.items() if path.startswith(p) and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
            stall = next((s for p, s in st.stalls.items() if path.startswith(p)), None)
            late = next((s for p, s in st.slow.items() if path.startswith(p)), None)
            release = st.release
            corrupt = any(path.startswith(p) for p in st.corrupt)
            gone = _video_of(path) in st.gone
        if late is not None:
            with st.lock:
                st.held.append(path)
                st.recorded.notify_all()
            try:
                release.wait(late)
            finally:
                with st.lock:
                    st.held.remove(path)
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after_s:g}"} if fault.retry_after_s is not None else {}
            return self._json(fault.status, {"error": f"injected {fault.status}"}, head, headers)
        if api:
            return self._api(api.group(1), api.group(2), head)
        if gone:
            return self._json(404, {"error": "gone"}, head)
        target = (cdn.root / path.lstrip("/")).resolve()
        if cdn.root not in target.parents or not target.is_file():
            return self._json(404, {"error": "not found"}, head)
        size = target.stat().st_size
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            parsed = _parse_range(rng, size)
            if parsed is None:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return 416, 0
            start, end = parsed
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return status, 0
        if stall is not None:
            with st.lock:
                st.stalled += 1
                st.recorded.notify_all()
            try:
                release.wait(stall)
            finally:
                with st.lock:
                    st.stalled -= 1
            self.close_connection = True  # the body never comes: the client sees the connection end
            return status, 0
        with open(target, "rb") as fh:
            fh.seek(start)
            body = fh.read(length)
        if corrupt:
            body = random.Random(path).randbytes(len(body))
        return status, self._write(body)

    def _write(self, body: bytes) -> int:
        bps = self.server_cdn.bandwidth_bps
        sent = 0
        t0 = time.monotonic()
        for i in range(0, len(body), CHUNK):
            chunk = body[i : i + CHUNK]
            self.wfile.write(chunk)
            sent += len(chunk)
            if bps:
                ahead = sent / bps - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        return sent

    def _api(self, index_id: str, video_id: str, head: bool) -> tuple[int, int]:
        cdn = self.server_cdn
        with cdn._state.lock:
            gone = video_id in cdn._state.gone
        if self.headers.get("x-api-key") != cdn.api_key:
            return self._json(401, {"code": "api_key_invalid", "message": "bad or missing x-api-key"}, head)
        playlist = cdn.root / "hls" / video_id / "index.m3u8"
        if index_id != cdn.index_id or gone or not playlist.is_file():
            return self._json(404, {"code": "video_not_found", "message": f"no video {video_id}"}, head)
        return self._json(
            200,
            {
                "_id": video_id,
                "index_id": index_id,
                "hls": {"video_url": cdn.hls_url(video_id), "status": "COMPLETE"},
            },
            head,
        )

    def _json(
        self, status: int, data: dict[str, Any], head: bool, headers: dict[str, str] | None = None
    ) -> tuple[int, int]:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return status, 0
        self.wfile.write(body)
        return status, len(body)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n else None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)
