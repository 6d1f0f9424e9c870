"""nginx as the CDN: a real web server, not clipline's own, serving a folder of HLS for integration tests.

``Nginx(root, tmp)`` writes its own configuration, pid, logs and temp paths under ``tmp`` and runs
Debian's nginx in the foreground (``daemon off; master_process off``: one process) as a child of the
test process, tied to the calling thread (``tied_to_caller``: it dies with the test run, even a killed
one). Two ``server``s listen on free ports of 127.0.0.1: the CDN (``base_url``) and an edge a redirect
may send a client to (``edge_url``), both serving ``root`` with settings a real CDN has (sendfile,
ETag, keep-alive, gzip-coded chunked playlists). Its access log, one JSON object per request, names
the method, URI, status, ``$bytes_sent``/``$body_bytes_sent``, the Range header and Content-Encoding.

Locations of the CDN server (``path`` below is a path under ``root``, e.g. ``hls/v_a/index.m3u8``):

- ``/{path}``: the file (``/hls/...``, ``/audio/...``, any folder of ``root``);
- ``/r301/{path}``, ``/r302/{path}``: a redirect to ``/{path}`` on the same server;
- ``/r307/{path}``: a redirect to ``/{path}`` on the edge server (another port);
- ``/r308/{path}``: a redirect to ``/{path}`` with a relative Location (``absolute_redirect off``);
- ``/noetag/{path}``: the file without an ETag (``etag off``, as on farms whose servers' mtimes differ);
- ``/noranges/{path}``: the file, Range ignored (``max_ranges 0``: 200 and the whole body);
- ``/cached/{path}``: the file with ``Cache-Control: public, max-age=300`` (and on the edge too);
- ``/loop/{path}``: a redirect to itself, for ever;
- ``/away/{path}``: a redirect to ``http://localhost:{edge port}/{path}`` (another host name);
- ``/meta/{path}``: a redirect to the cloud metadata address (``http://169.254.169.254/{path}``);
- ``/gone503/...``: 503, ``/forbidden/...``: 403 (``deny all``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.subprocesses import tied_to_caller

#: Where Debian puts the binary (/usr/sbin is not on every user's PATH).
CANDIDATES = ("nginx", "/usr/sbin/nginx")
INSTALL = "nginx not installed (Debian: apt-get install nginx-light; ./dev.sh test does)"

LOG_FORMAT = (
    '\'{"method":"$request_method","uri":"$request_uri","status":$status,'
    '"bytes_sent":$bytes_sent,"body_bytes_sent":$body_bytes_sent,"range":"$http_range",'
    '"port":$server_port,"encoding":"$sent_http_content_encoding","etag":"$sent_http_etag"}\''
)


def binary() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require() -> str:
    """The nginx binary, or a skip saying how to install it."""
    found = binary()
    if found is None:
        pytest.skip(INSTALL)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_foreground(
    tmp: Path, config: Callable[[list[int]], str], ports: int, *, timeout_s: float = 10
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """nginx in the foreground (one process, a child that dies with the calling thread: even a killed
    test run ends it) with ``config(ports)`` as ``tmp/nginx.conf``, its logs under ``tmp``, once each of
    ``ports`` free loopback ports accepts a connection; other ports are tried when one was taken
    between the probe and nginx's bind."""
    exe = require()
    tmp.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        chosen = [_free_port() for _ in range(ports)]
        if len(set(chosen)) != ports:
            continue
        conf = tmp / "nginx.conf"
        conf.write_text(config(chosen))
        with open(tmp / "stderr.log", "ab") as err:  # the child holds its own copy
            proc = subprocess.Popen(
                [exe, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                preexec_fn=tied_to_caller(),
            )
        if _listening(proc, chosen, timeout_s):
            return proc, chosen
        stop_nginx(proc)
    raise RuntimeError(f"nginx did not start: {error_tail(tmp)}")


def _listening(proc: subprocess.Popen[bytes], ports: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def stop_nginx(proc: subprocess.Popen[bytes]) -> None:
    """Stop nginx gracefully (open keep-alive connections are closed), killed if it takes over 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def error_tail(tmp: Path) -> str:
    """The end of nginx's error log and stderr under ``tmp``."""
    out = []
    for name in ("error.log", "stderr.log"):
        p = tmp / name
        if p.exists():
            out.append(p.read_text(errors="replace")[-2000:])
    return "\n".join(out)


def _config(root: Path, tmp: Path, port: int, edge: int) -> str:
    common = f"""
        root {root};
        sendfile on;
        etag on;
        keepalive_timeout 30s;
        keepalive_requests 1000;
        location /cached/ {{
            alias {root}/;
            add_header Cache-Control "public, max-age=300";
        }}
        location /noetag/ {{
            alias {root}/;
            etag off;
        }}
        location /noranges/ {{
            alias {root}/;
            max_ranges 0;
        }}
        location /gone503/ {{ return 503; }}
        location /forbidden/ {{ deny all; }}
    """
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/iso.segment m4s;
        video/mp4 mp4;
        audio/mp4 m4a;
        application/json json;
    }}
    default_type application/octet-stream;
    log_format cdn escape=json {LOG_FORMAT};
    access_log {tmp}/access.log cdn;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    tcp_nopush on;
    gzip on;
    gzip_types application/vnd.apple.mpegurl application/x-mpegURL;
    gzip_min_length 0;
    gzip_vary on;
    server {{
        listen 127.0.0.1:{port};
        server_name cdn;
        {common}
        location ~ ^/r301/(.*)$ {{ return 301 /$1$is_args$args; }}
        location ~ ^/r302/(.*)$ {{ return 302 /$1$is_args$args; }}
        location ~ ^/r307/(.*)$ {{ return 307 http://127.0.0.1:{edge}/$1$is_args$args; }}
        location ~ ^/r308/(.*)$ {{
            absolute_redirect off;
            return 308 /$1$is_args$args;
        }}
        location ~ ^/loop/(.*)$ {{ return 302 /loop/$1; }}
        location ~ ^/away/(.*)$ {{ return 302 http://localhost:{edge}/$1; }}
        location ~ ^/meta/(.*)$ {{ return 302 http://169.254.169.254/$1; }}
    }}
    server {{
        listen 127.0.0.1:{edge};
        server_name edge;
        {common}
    }}
}}
"""


class Nginx:
    """One nginx serving ``root`` on two loopback ports, its files under ``tmp`` (see the module)."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = Path(root).resolve()
        self.tmp = Path(tmp)
        self.port = self.edge = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        self.proc, (self.port, self.edge) = start_foreground(
            self.tmp, lambda ports: _config(self.root, self.tmp, *ports), 2
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_nginx(self.proc)
        self.proc = None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge}"

    def url(self, relpath: str, via: str = "") -> str:
        """``relpath`` under ``root``, through location ``via`` (``r301``, ``cached``, ...) if given."""
        return f"{self.base_url}/{via + '/' if via else ''}{relpath.lstrip('/')}"

    def hls_url(self, video_id: str, via: str = "") -> str:
        return self.url(f"hls/{video_id}/index.m3u8", via)

    # -- what it did ---------------------------------------------------------------
    def log(self, settle_s: float = 0.1) -> list[dict[str, Any]]:
        """Every request logged so far, in order. nginx writes a request's line once it has sent the
        last byte, so a client may have its answer a moment before the line is there: the log is read
        once it has not grown for ``settle_s``."""
        path = self.tmp / "access.log"
        size, deadline = -1, time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(settle_s)
            now = path.stat().st_size if path.exists() else 0
            if now == size:
                break
            size = now
        if not path.exists():
            return []
        return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]

    def requests(self, prefix: str = "", *, method: str | None = None) -> list[dict[str, Any]]:
        return [
            r for r in self.log() if r["uri"].startswith(prefix) and (method is None or r["method"] == method)
        ]

    def reset_log(self) -> None:
        """Start the access log afresh (nginx keeps appending to the file it has open: truncate it)."""
        path = self.tmp / "access.log"
        if path.exists():
            os.truncate(path, 0)

    def errors(self) -> str:
        return error_tail(self.tmp)
