"""One Prometheus endpoint per ``clipline worker`` command, aggregated over all its processes.

Each command gets a fresh multiprocess directory (so numbers from an earlier
run never leak into this one), passes it to its dramatiq children, serves the
aggregate on CLIPLINE_METRICS_PORT, and removes the directory when it stops.
"""

from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from .exits import PortInUse


class MetricsServer:
    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        self.port, self.host = port, host
        self.directory = Path(tempfile.mkdtemp(prefix="clipline-metrics-"))
        self._server: Any = None

    def env(self) -> dict[str, str]:
        d = str(self.directory)
        return {"PROMETHEUS_MULTIPROC_DIR": d, "prometheus_multiproc_dir": d, "dramatiq_prom_db": d}

    def start(self) -> None:
        """Serve; PortInUse (one line naming the port and the flag) when another process holds the port."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))
        try:
            self._server, _thread = start_http_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            shutil.rmtree(self.directory, ignore_errors=True)
            why = "already in use" if exc.errno == errno.EADDRINUSE else "not allowed to this user"
            raise PortInUse(
                f"metrics port {self.port} is {why} on this host (another `clipline worker`?): "
                "give each worker command its own port with "
                "--metrics-port N (or CLIPLINE_METRICS_PORT=N; 0 turns metrics off)"
            ) from exc

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)
