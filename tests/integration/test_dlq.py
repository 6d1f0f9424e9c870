"""`clipline dlq`: an operator sees what a stage gave up on, sends it back, or deletes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from actors.sender import Sender
from pipeline.settings import load_settings
from pipeline.stages import Stage

from .conftest import Stack, new_job_id, private_vhost
from .faultkit import check_job, init_db, queue_counts, small_request, submit, wait_final, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIPLINE = str(Path(sys.executable).with_name("clipline"))


def dlq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLIPLINE, "dlq", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def dead_letter_counts(env: dict[str, str]) -> dict[str, int]:
    res = dlq(env, "list", "--json")
    assert res.returncode == 0, res.stderr
    return {stage: v["count"] for stage, v in json.loads(res.stdout)["stages"].items()}


def give_up_on(broker_url: str, queue: str, count: int = 1) -> None:
    """What Dramatiq does when it gives up on a message: reject it without requeue, so RabbitMQ moves it
    to the queue's dead-letter queue (with an x-death header)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = conn.channel()
        for _ in range(count):
            method, _props, _body = channel.basic_get(queue, auto_ack=False)
            assert method is not None, f"nothing in {queue}"
            channel.basic_nack(method.delivery_tag, requeue=False)
    finally:
        conn.close()


def take_all(broker_url: str, queue: str) -> list[dict[str, Any]]:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    bodies = []
    try:
        channel = conn.channel()
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(json.loads(body))
    finally:
        conn.close()


def test_an_assembly_given_up_on_is_requeued_and_the_job_completes(stack: Stack) -> None:
    url = stack.env["CLIPLINE_BROKER_URL"]
    init_db(stack)
    # Given a job whose clips are done and whose assembly message the assemble stage gave up on
    stack.start_workers("--stage", "plan", name="plan")
    stack.start_workers("--stage", "clip", "--concurrency", "2", name="clip")
    job_id = new_job_id("dlq")
    request = small_request(stack, job_id, 4)
    submit(stack, request)
    wait_for(
        "the assembly message",
        lambda: queue_counts(url, ("render.assemble",))["render.assemble"] == 1,
        timeout=180,
    )
    before = dead_letter_counts(stack.env)  # the run's vhost may hold other tests' dead letters
    give_up_on(url, "render.assemble")

    # When the operator lists the dead letters
    listed = dlq(stack.env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    stages = json.loads(listed.stdout)["stages"]
    assert {s: v["count"] for s, v in stages.items()} == before | {"assemble": before["assemble"] + 1}
    (letter,) = [m for m in stages["assemble"]["messages"] if m["job_id"] == job_id]
    assert (letter["actor"], letter["stage"]) == ("assemble_render", "assemble")
    assert letter["dead_lettered_at"] and letter["enqueued_at"]
    text = dlq(stack.env, "list", "--stage", "assemble")
    assert (
        f"render.assemble.XQ: {before['assemble'] + 1} dead letter(s)" in text.stdout
        and job_id in text.stdout
    )
    shown = dlq(stack.env, "show", letter["message_id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["message"]["args"][0] == job_id

    # and sends it back
    back = dlq(stack.env, "requeue", "--stage", "assemble", letter["message_id"])
    assert back.returncode == 0, back.stderr
    assert "1 dead letter(s) requeued to render.assemble" in back.stdout

    # Then an assembler renders the job, once, and the dead-letter queue is empty
    stack.start_workers("--stage", "assemble", name="assemble")
    result = wait_final(stack, job_id)
    outcome = check_job(stack, request, result)
    assert outcome.status == "COMPLETED" and outcome.assemblies == 1
    assert dead_letter_counts(stack.env) == before


@pytest.fixture(scope="module")
def quiet_vhost() -> Iterator[str]:
    with private_vhost("dlq") as name:
        yield name


def test_purge_and_requeue_by_id_or_all_and_what_they_refuse(quiet_vhost: str, tmp_path: Path) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/{quiet_vhost}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))}
    env |= {
        "CLIPLINE_BROKER_URL": url,
        "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/j.db",
        "PYTHONPATH": str(ROOT),
    }
    # Given three clip messages that were given up on (no worker runs in this vhost)
    send = Sender(load_settings(env))
    for i in range(3):
        send(Stage.CLIP, f"job-{i}", i, None)
    give_up_on(url, "render.clip", 3)
    ids = [
        m["message_id"] for m in json.loads(dlq(env, "list", "--json").stdout)["stages"]["clip"]["messages"]
    ]
    assert len(ids) == 3

    # What is refused changes nothing: neither ids nor --all, an unknown id, an unknown id among known ones
    refused = [
        dlq(env, "requeue", "--stage", "clip"),
        dlq(env, "purge", "--stage", "clip", "--all", ids[0]),
        dlq(env, "purge", "--stage", "clip", "no-such-id", "--json"),
        dlq(env, "requeue", "--stage", "clip", ids[0], "no-such-id"),
        dlq(env, "show", "no-such-id"),
    ]
    assert [r.returncode for r in refused] == [2] * 5, [r.stderr for r in refused]
    assert json.loads(refused[2].stdout)["error"]["code"] == "request_invalid"
    assert "no-such-id" in refused[3].stderr
    listed = json.loads(dlq(env, "list", "--json").stdout)["stages"]["clip"]["messages"]
    assert [m["message_id"] for m in listed] == ids  # all there, in their order

    # Purge one by id: only it goes, the others keep their order
    assert dlq(env, "purge", "--stage", "clip", ids[1]).returncode == 0
    listed = json.loads(dlq(env, "list", "--stage", "clip", "--json").stdout)["stages"]["clip"]["messages"]
    assert [m["message_id"] for m in listed] == [ids[0], ids[2]]

    # Requeue all: back on render.clip, with their retry history removed so they get every retry again
    res = dlq(env, "requeue", "--stage", "clip", "--all", "--json")
    assert res.returncode == 0 and [m["message_id"] for m in json.loads(res.stdout)["requeue"]] == [
        ids[0],
        ids[2],
    ]
    assert queue_counts(url, ("render.clip.XQ",))["render.clip.XQ"] == 0
    back = take_all(url, "render.clip")
    assert [m["message_id"] for m in back] == [ids[0], ids[2]]
    assert all(m["queue_name"] == "render.clip" and "retries" not in m["options"] for m in back)

    # A broker that is down is exit 3
    down = dlq(env | {"CLIPLINE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F"}, "list", "--json")
    assert down.returncode == 3 and json.loads(down.stdout)["error"]["code"] == "broker_unavailable"
