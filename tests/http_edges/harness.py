"""Shared set-up of the HTTP edge-case tests (an outside audit's): the real ``clipline api`` app in
process (FastAPI's TestClient),
over a throwaway SQLite (or PostgreSQL) database, file or S3 storage; nothing listens on the network
except what a test starts itself on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from clipline.api import create_app
from pipeline.models import JobStatus, parse_request
from pipeline.settings import Settings, load_settings
from pipeline.store import JobStore

#: Ports nothing answers on: Redis and the broker are not needed unless a test gives its own.
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def settings_for(
    tmp: Path, *, db_url: str | None = None, redis_url: str = DEAD_REDIS, **extra: str
) -> Settings:
    env = {
        "CLIPLINE_DATABASE_URL": db_url or f"sqlite:///{tmp}/clipline.db",
        "CLIPLINE_WORK_DIR": str(tmp / "work"),
        "CLIPLINE_OUTPUT_DIR": str(tmp / "output"),
        "CLIPLINE_MEDIA_DIR": str(tmp / "media"),
        "CLIPLINE_REDIS_URL": redis_url,
        "CLIPLINE_BROKER_URL": DEAD_BROKER,
        **extra,
    }
    return load_settings(env)


@contextmanager
def api(settings: Settings) -> Iterator[TestClient]:
    """The whole app (JSON API and operations page); server errors come back as answers, not raised."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def one_line_request(job_id: str) -> dict[str, object]:
    return {
        "job_id": job_id,
        "lines": [
            {
                "text": "a",
                "start_ms": 0,
                "end_ms": 1000,
                "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000},
            }
        ],
    }


def completed_job(settings: Settings, job_id: str, **paths: Any) -> JobStore:
    """Record a job and move it to COMPLETED with the given output_path / report_path."""
    store = JobStore(settings.database_url)
    store.create_or_get(parse_request(one_line_request(job_id)))
    assert store.advance(job_id, status=JobStatus.COMPLETED, **paths)
    return store


def csrf_of(client: TestClient) -> str:
    """The operations page's CSRF token (double submit): the cookie the page sets, to repeat in a form."""
    assert client.get("/ui/submit").status_code == 200
    value = client.cookies.get("clipline_csrf")
    assert value
    return str(value)
