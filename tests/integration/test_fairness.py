"""Fairness between jobs (pipeline.priority on RabbitMQ priority queues): a small job submitted behind a
big one is not starved, with a real broker and real workers at a clip cap of 1."""

from __future__ import annotations

import logging

import pika
import pytest

from .conftest import Stack, new_job_id
from .faultkit import init_db, small_request, submit, wait_final, wait_for

pytestmark = pytest.mark.integration


def ready(broker_url: str, queue: str) -> int:
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


def test_a_small_job_queued_behind_a_big_one_runs_first(stack: Stack) -> None:
    init_db(stack)
    url = stack.env["CLIPLINE_BROKER_URL"]
    big, small = new_job_id("big"), new_job_id("small")
    before = ready(url, "render.clip")  # what earlier tests of this run's vhost may have left
    # Given a planner only: a 12-line job's clips are queued, then a 3-line job's behind them
    stack.start_workers("--stage", "plan", name="plan")
    submit(stack, small_request(stack, big, 12, audio=False))
    wait_for(
        "the big job's clips queued", lambda: ready(url, "render.clip") == before + 12, timeout=90, every=0.2
    )
    submit(stack, small_request(stack, small, 3, audio=False))
    wait_for(
        "the small job's clips queued",
        lambda: ready(url, "render.clip") == before + 15,
        timeout=90,
        every=0.2,
    )
    # When one clip worker (cap 1) starts, with fallback and assembly
    stack.start_workers("--stage", "clip", "--concurrency", "1", name="clip")
    stack.start_workers("--stage", "fallback", name="fallback")
    stack.start_workers("--stage", "assemble", name="assemble")
    assert wait_final(stack, small)["status"] == "COMPLETED"
    assert wait_final(stack, big)["status"] == "COMPLETED"
    # Then the small job's clips started before the rest of the big job's (order of clip start events)
    started = [
        e["clip_task_id"].split(":")[0]
        for e in stack.events("twelvelabs.video_clip")
        if e["clip_status"] == "started" and e["job_id"] in (big, small)
    ]
    assert sorted(started) == sorted([big] * 12 + [small] * 3)
    assert started[:3] == [small] * 3, started
    assert not stack.actor_errors()
