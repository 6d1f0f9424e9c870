"""Malformed messages put straight on a stage queue are dead-lettered; the worker keeps serving."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import pika
import pytest

from .conftest import Stack, new_job_id
from .faultkit import check_job, dead_letters, init_db, small_request, submit, wait_final, wait_for

pytestmark = pytest.mark.integration


def dramatiq_message(actor: str, args: list[Any]) -> bytes:
    return json.dumps(
        {
            "queue_name": "render.clip",
            "actor_name": actor,
            "args": args,
            "kwargs": {},
            "options": {},
            "message_id": str(uuid.uuid4()),
            "message_timestamp": int(time.time() * 1000),
        }
    ).encode()


def consumers(broker_url: str, queue: str) -> int:
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # a 404 while the worker starts is expected
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


def test_malformed_clip_messages_are_dead_lettered_and_the_worker_renders_on(stack: Stack) -> None:
    url = stack.env["CLIPLINE_BROKER_URL"]
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    wait_for("a clip consumer", lambda: consumers(url, "render.clip") > 0, timeout=60, every=0.5)
    before = dead_letters(url)["render.clip.XQ"]
    bad = [
        b"\x00\xffnot json at all{",  # undecodable
        dramatiq_message("extract_clip", ["../../etc", "first", None, "one too many"]),  # wrong arity
        dramatiq_message("extract_clip", [new_job_id("nosuchjob"), 0, None]),  # a job that does not exist
        dramatiq_message("extract_clip", [{"job": 1}, "zero"]),  # wrong types
    ]
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for body in bad:
            ch.basic_publish("", "render.clip", body, pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()

    wait_for(
        "the malformed messages in render.clip.XQ",
        lambda: dead_letters(url)["render.clip.XQ"] - before >= len(bad),
        timeout=60,
        every=0.5,
    )
    assert dead_letters(url)["render.clip.XQ"] - before == len(bad)  # each exactly once, nothing retried
    # The undecodable one is also logged once as rejected (no job is recorded for a clip message)
    rejected = [e for e in stack.events("message.rejected") if e["queue"] == "render.clip"]
    assert [(e["reason"], e["recorded"]) for e in rejected] == [("undecodable", False)]

    # The same worker renders a real job afterwards
    job_id = new_job_id("after-dlq")
    request = small_request(stack, job_id, 6)
    submit(stack, request)
    result = wait_final(stack, job_id)
    outcome = check_job(stack, request, result)
    assert outcome.status == "COMPLETED" and outcome.clips_lost == 0
    assert all(p.poll() is None for p in stack.procs)  # no worker died on the way
