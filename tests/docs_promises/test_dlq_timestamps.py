"""CONTRACTS "Every timestamp, everywhere (API, --json, report, callbacks, logs), is ISO 8601 in UTC with
its zone: 2026-11-22T08:15:02.123456Z"; README: ``--json`` timestamps "always ISO 8601 in UTC (...Z)"."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from .helpers import clipline, last_json, scratch_env


@pytest.fixture
def own_vhost() -> Iterator[str]:
    name = f"clipline-audit-f-{secrets.token_hex(4)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield name
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=True, capture_output=True, timeout=60)


def test_dlq_json_timestamps_are_utc_with_z(tmp_path: Path, own_vhost: str) -> None:
    """``clipline dlq list --json`` gives ``enqueued_at`` and ``dead_lettered_at`` as ``...Z``, as
    every timestamp of the contracts. Before: ``2026-12-03T04:39:32.991000+00:00``
    (actors/deadletters.py formatted them with ``datetime.isoformat()``)."""
    url = f"amqp://guest:guest@127.0.0.1:5672/{own_vhost}"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.queue_declare("render.clip.XQ", durable=True, arguments={"x-message-ttl": 7 * 86400 * 1000})
        now_ms = int(time.time() * 1000)
        message = {
            "queue_name": "render.clip",
            "actor_name": "extract_clip",
            "args": ["af-dlq-1", 0, "4bf92f3577b34da6"],
            "kwargs": {},
            "options": {"retries": 3, "traceback": "Traceback ...\nValueError: boom"},
            "message_id": str(uuid.uuid4()),
            "message_timestamp": now_ms,
        }
        death = [{"count": 1, "reason": "rejected", "queue": "render.clip", "time": int(time.time())}]
        ch.basic_publish(
            "",
            "render.clip.XQ",
            json.dumps(message).encode(),
            pika.BasicProperties(delivery_mode=2, headers={"x-death": death}),
        )
    finally:
        conn.close()
    env = scratch_env(tmp_path, CLIPLINE_BROKER_URL=url)
    done = clipline(env, "dlq", "list", "--stage", "clip", "--json")
    assert done.returncode == 0, done.stderr[-500:]
    entries = last_json(done.stdout)["stages"]["clip"]["messages"]
    assert len(entries) == 1
    stamps = {k: entries[0][k] for k in ("enqueued_at", "dead_lettered_at") if entries[0].get(k)}
    assert stamps, entries[0]
    assert all(v.endswith("Z") for v in stamps.values()), stamps
