"""Webhook deliveries against a loopback receiver: backoff, giving up, never twice, missed states found."""

from __future__ import annotations

import json
import time

import pytest

from pipeline import webhooks
from pipeline.context import Context
from pipeline.models import JobStatus, parse_request

from .conftest import Stack, build_request, new_job_id
from .test_lifecycle import Receiver
from .test_stages import make_ctx

pytestmark = pytest.mark.integration


def finished_job(stack: Stack, callback_url: str) -> tuple[str, Context]:
    ctx = make_ctx(
        stack,
        CLIPLINE_WEBHOOK_SECRET="k",
        CLIPLINE_WEBHOOK_MAX_ATTEMPTS="3",
        CLIPLINE_WEBHOOK_BACKOFF_S="1.0",
    )
    job_id = new_job_id("hook")
    body = build_request(job_id, stack.cdn, [("v_a", 0, 900, True)], line_ms=lambda i: 1000, audio=False)
    body["callback_url"] = callback_url
    ctx.store.create_or_get(parse_request(body))
    ctx.store.advance(job_id, status=JobStatus.FAILED, error="the song could not be read")
    return job_id, ctx


def test_backoff_give_up_and_missed_states(stack: Stack) -> None:
    receiver = Receiver(fail_first=100)
    try:
        job_id, ctx = finished_job(stack, receiver.url)
        # A state that was never queued (a worker died right after finishing the job) is found and queued once
        assert webhooks.queue_missed(ctx) == 1
        assert webhooks.queue_missed(ctx) == 0
        assert webhooks.queue(ctx, job_id) is None  # the same state is never queued twice

        first = webhooks.deliver_due(ctx)
        assert [(s.state, s.tries) for s in first] == [("pending", 1)]
        assert webhooks.deliver_due(ctx) == []  # not due yet: backoff 1 s
        time.sleep(1.1)
        assert [(s.state, s.tries) for s in webhooks.deliver_due(ctx)] == [("pending", 2)]
        time.sleep(2.1)  # second backoff: 2 s
        assert [(s.state, s.tries) for s in webhooks.deliver_due(ctx)] == [("failed", 3)]
        time.sleep(1.0)
        assert webhooks.deliver_due(ctx) == []  # given up: no more tries
        (row,) = webhooks.deliveries(ctx, job_id)
        assert row.state == "failed" and row.last_error == "receiver answered HTTP 500"
        bodies = receiver.payloads()
        assert len(bodies) == 3 and {b["delivery_id"] for b in bodies} == {row.id}
        assert bodies[0]["status"] == "FAILED" and bodies[0]["error"].endswith("the song could not be read")
        assert json.loads(row.body) == bodies[0]
    finally:
        receiver.close()


def test_an_unreachable_receiver_is_an_error_recorded_not_raised(stack: Stack) -> None:
    job_id, ctx = finished_job(stack, "http://127.0.0.1:1/nothing-listens")
    webhooks.notify(ctx, job_id)  # queues and tries at once: must not raise
    (row,) = webhooks.deliveries(ctx, job_id)
    assert row.state == "pending" and row.tries == 1 and "ConnectError" in (row.last_error or "")
