"""A loopback HTTP server that misbehaves on purpose, for the outbound-request defences (netguard, fetch).

Reached as ``127.0.0.1`` and as ``localhost``: two host names for one server, so a redirect
"to another host" needs no second machine. Routes:

- ``/redirect?to=URL[&code=302]``: a redirect to URL;
- ``/loop``: redirects to itself, for ever;
- ``/drip?n=N&every=S``: announces N bytes, sends one every S seconds;
- ``/endless``: a body without length that never ends (until the client hangs up);
- ``/huge``: announces 10 GB, sends zeros while the client reads;
- ``/playlist-huge``: an ``#EXTM3U`` playlist that never ends;
- ``/api-huge``: a JSON answer that never ends;
- ``/files/NAME``: bytes put there with ``put``;
- anything else: 200 with ``ok``.

Every request's path and headers are recorded (``seen``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    host: str
    path: str
    headers: dict[str, str]


class HostileServer:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> HostileServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.hostile = self  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, name="hostile", daemon=True).start()
        self._server = server
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"

    def put(self, name: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        self.files[name] = (body, content_type)
        return f"/files/{name}"

    def requests_to(self, prefix: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        hostile: HostileServer = self.server.hostile  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with hostile._lock:
            hostile.seen.append(Seen(self.headers.get("host", ""), self.path, dict(self.headers.items())))
        try:
            self._route(hostile, parts.path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, hostile: HostileServer, path: str, query: dict[str, str]) -> None:
        if path == "/redirect":
            self._head(int(query.get("code", "302")), {"Location": query["to"], "Content-Length": "0"})
        elif path == "/loop":
            self._head(302, {"Location": self.path, "Content-Length": "0"})
        elif path == "/drip":
            n, every = int(query.get("n", "100")), float(query.get("every", "0.3"))
            self._head(200, {"Content-Length": str(n)})
            for _ in range(n):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(every)
        elif path in ("/endless", "/playlist-huge", "/api-huge"):
            first = {"/endless": b"", "/playlist-huge": b"#EXTM3U\n", "/api-huge": b'{"hls": {"x": "'}[path]
            line = b"#EXTINF:2.0,\nseg.ts\n" if path == "/playlist-huge" else b"\0" * 65536
            self._head(200, {"Connection": "close"})
            self.wfile.write(first)
            while True:
                self.wfile.write(line)
        elif path == "/huge":
            self._head(200, {"Content-Length": str(10 * 2**30)})
            while True:
                self.wfile.write(b"\0" * 65536)
        elif path.startswith("/files/") and path[len("/files/") :] in hostile.files:
            body, ctype = hostile.files[path[len("/files/") :]]
            self._head(200, {"Content-Length": str(len(body)), "Content-Type": ctype})
            self.wfile.write(body)
        else:
            self._head(200, {"Content-Length": "2"})
            self.wfile.write(b"ok")

    def _head(self, code: int, headers: dict[str, str]) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
