"""One Prometheus endpoint per ``clipline worker`` command, aggregated over all its processes.

Each command gets a fresh multiprocess directory (so numbers from an earlier
run never leak into this one), passes it to its dramatiq children, serves the
aggregate on CLIPLINE_METRICS_PORT, and removes the directory when it stops. Commands that run the
assemble stage add what the job store knows (callback deliveries by state).
"""

from __future__ import annotations

import errno
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .exits import PortInUse

log = structlog.get_logger("clipline.metrics")

DELIVERIES = "clipline_webhook_deliveries"
DELIVERY_STATES = ("pending", "delivered", "failed")


class DeliveryCollector(Collector):
    """``clipline_webhook_deliveries{state}``: callback deliveries by state, counted in the job store at
    each scrape (``failed``: given up after CLIPLINE_WEBHOOK_MAX_ATTEMPTS tries). Served by the worker
    commands that run the assemble stage, the ones that deliver callbacks."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from pipeline.store import JobStore

        try:
            counts = JobStore(self.database_url).count_deliveries_by_state()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail with the database
            log.warning("metrics.deliveries_unreadable", error=f"{type(exc).__name__}: {exc}")
            return
        family = GaugeMetricFamily(DELIVERIES, "Callback deliveries by state (job store)", labels=["state"])
        for state in DELIVERY_STATES:
            family.add_metric([state], counts.get(state, 0))
        yield family


class MetricsServer:
    def __init__(self, port: int, host: str = "0.0.0.0", collectors: Iterable[Collector] = ()) -> None:
        self.port, self.host = port, host
        self.collectors = list(collectors)
        self.directory = Path(tempfile.mkdtemp(prefix="clipline-metrics-"))
        self._server: Any = None

    def env(self) -> dict[str, str]:
        d = str(self.directory)
        return {"PROMETHEUS_MULTIPROC_DIR": d, "prometheus_multiproc_dir": d, "dramatiq_prom_db": d}

    def start(self) -> None:
        """Serve; PortInUse (one line naming the port and the flag) when another process holds the port."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))
        for collector in self.collectors:
            registry.register(collector)
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
