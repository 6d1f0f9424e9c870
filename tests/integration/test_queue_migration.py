"""Priority queues on a broker where an older clipline declared the stage queues without
``x-max-priority``: workers and senders refuse with the fix named, ``clipline queues migrate``
re-declares them and keeps every message (actors.migrate)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import pika
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from actors.rabbit import PriorityBroker, QueueNeedsMigration
from pipeline.priority import MAX_PRIORITY

from .conftest import Stack, private_vhost
from .faultkit import init_db

pytestmark = pytest.mark.integration

CLIP = {"video_id": "v_a", "start_ms": 0, "end_ms": 1000}


@pytest.fixture
def old_vhost() -> Iterator[str]:
    """A vhost of its own: its render.clip and render.clip.DQ are declared as clipline did before."""
    with private_vhost("migrate") as name:
        yield name


def message(index: int) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name="render.clip",
        actor_name="extract_clip",
        args=("job-old", index, None),
        kwargs={},
        options={},
    )


def bodies(url: str, queue: str) -> list[dict[str, Any]]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        out = []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=False)
            if method is None:
                return out
            out.append(json.loads(body))
    finally:
        conn.close()  # nothing acknowledged: the messages go back to the queue


def exists(url: str, queue: str) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if conn.is_open:
            conn.close()


def test_old_queues_are_refused_with_the_fix_named_then_migrated_keeping_their_messages(
    stack: Stack, old_vhost: str
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{old_vhost}"
    stack.env["CLIPLINE_BROKER_URL"] = url
    init_db(stack)
    # Given render.clip declared by the old broker (no x-max-priority) holding 3 messages
    old = RabbitmqBroker(url=url, confirm_delivery=True, middleware=[])
    sent = [old.enqueue(message(i)).message_id for i in range(3)]
    old.declare_queue("render.plan", ensure=True)  # and render.plan, empty
    old.close()
    # Then a sender of this clipline fails with an error that names the fix
    new = PriorityBroker(url=url, confirm_delivery=True, middleware=[])
    with pytest.raises(QueueNeedsMigration, match="clipline queues migrate") as err:
        new.enqueue(message(9))
    assert err.value.queue == "render.clip"
    new.close()
    # and `queues check` names the queues, and a worker refuses to start (exit 3) naming the fix
    check = stack.cli("queues", "check", "--json")
    assert check.returncode == 1, check.stderr
    old_queues = ["render.plan", "render.plan.DQ", "render.clip", "render.clip.DQ"]
    assert json.loads(check.stdout)["needs_migration"] == old_queues
    request = stack.tmp / "request.json"
    request.write_text(
        json.dumps({"job_id": "mig-1", "lines": [{"start_ms": 0, "end_ms": 1000, "clip": CLIP}]})
    )
    submitted = stack.cli("submit", str(request))
    assert submitted.returncode == 3 and "clipline queues migrate" in submitted.stderr
    worker = stack.cli("worker", "--stage", "clip", timeout=120)
    assert worker.returncode == 3
    assert "queue render.plan" in worker.stderr and "clipline queues migrate" in worker.stderr
    # When a consumer is still attached, migrate refuses (exit 1) and changes nothing
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume("render.clip", lambda *a: None)
    refused = stack.cli("queues", "migrate")
    assert refused.returncode == 1 and "stop the workers" in refused.stderr
    assert json.loads(stack.cli("queues", "check", "--json").stdout)["needs_migration"] == old_queues
    conn.close()
    # When the workers are stopped, migrate moves the messages aside and back
    done = stack.cli("queues", "migrate", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["queue"]: r for r in json.loads(done.stdout)["queues"]}
    assert rows["render.clip"]["done"] and rows["render.clip"]["moved"] == 3
    assert rows["render.plan"]["done"] and rows["render.plan"]["moved"] == 0
    assert rows["render.fallback"]["state"] == "absent" and not rows["render.fallback"]["done"]
    # Then every message is kept, the queues are up to date, and this clipline sends with priorities
    assert sorted(b["message_id"] for b in bodies(url, "render.clip")) == sorted(sent)
    assert stack.cli("queues", "check").returncode == 0
    assert not exists(url, "render.clip.migrating")
    new = PriorityBroker(url=url, confirm_delivery=True, middleware=[])
    new.enqueue(message(3).copy(options={"broker_priority": MAX_PRIORITY}))
    new.close()
    assert bodies(url, "render.clip")[0]["args"][1] == 3  # the priority message is delivered first
