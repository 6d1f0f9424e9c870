"""A delivery row whose URL httpx refuses at send time (a tab, an invalid IDNA label: rows stored before the
request check refused them) ends 'failed' within the max tries with the error recorded, and no row's
failure stops the rest of a ``deliver_due`` batch. The receiver is a real loopback HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from pipeline import webhooks
from pipeline.context import Context
from pipeline.models import JobStatus, parse_request
from pipeline.tables import WebhookDelivery, utcnow
from tests.loopback import serving
from tests.stubs import stub_context

LINE = {"start_ms": 0, "end_ms": 1000, "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000}}
UNSENDABLE = ["http://example.com/ho\tok", "http://xn--abc.example/hook"]
#: What the recorded error says of each (the tab; the IDNA codec's complaint)
WHY = {UNSENDABLE[0]: "'\\t'", UNSENDABLE[1]: "InvalidCodepoint"}
MAX_TRIES = 3


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    got: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Receiver.got.append(self.path)
        if self.path == "/moved":  # a redirect httpx cannot build the next request of
            self.send_response(301)
            self.send_header("Location", UNSENDABLE[1])
            self.send_header("Content-Length", "0")
        else:
            self.send_response(204)
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.got = []
    with serving(_Receiver) as url:
        yield url


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return stub_context(
        tmp_path, CLIPLINE_WEBHOOK_MAX_ATTEMPTS=str(MAX_TRIES), CLIPLINE_ALLOW_PRIVATE_NETWORKS="true"
    )


def stored(ctx: Context, job_id: str, url: str, *, at_s: float) -> str:
    """A finished job's delivery, queued for a valid URL and then holding ``url`` (as a row stored before
    the request check refused such URLs does), due ``at_s`` seconds ago; its id."""
    request = {"job_id": job_id, "callback_url": "http://127.0.0.1:9/hook", "lines": [LINE]}
    job, _ = ctx.store.create_or_get(parse_request(request))
    ctx.store.advance(job.id, status=JobStatus.FAILED, error="x")
    row = webhooks.queue(ctx, job.id)
    assert row is not None
    due = utcnow() - timedelta(seconds=at_s)
    with ctx.store.session() as s:
        s.execute(update(WebhookDelivery).where(WebhookDelivery.id == row.id).values(url=url, next_at=due))
        s.commit()
    return row.id


def poll(ctx: Context) -> None:
    """The pump's next poll, once every row is due again (its backoff or lease skipped)."""
    with ctx.store.session() as s:
        s.execute(update(WebhookDelivery).values(next_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    webhooks.deliver_due(ctx)


@pytest.mark.parametrize("url", UNSENDABLE)
def test_a_delivery_that_cannot_be_sent_ends_failed_within_the_max_tries(ctx: Context, url: str) -> None:
    stored(ctx, "j1", url, at_s=1)
    for _ in range(MAX_TRIES + 2):
        poll(ctx)
    [row] = webhooks.deliveries(ctx, "j1")
    assert row.state == webhooks.FAILED and 1 <= row.tries <= MAX_TRIES, (
        row.state,
        row.tries,
        row.last_error,
    )
    assert row.last_error and WHY[url] in row.last_error, row.last_error


def test_a_row_that_cannot_be_sent_does_not_stop_the_batch(ctx: Context, receiver: str) -> None:
    stored(ctx, "bad1", UNSENDABLE[0], at_s=30)  # the oldest due: tried first
    stored(ctx, "good", f"{receiver}/good", at_s=20)
    stored(ctx, "bad2", UNSENDABLE[1], at_s=10)
    sent = webhooks.deliver_due(ctx)
    assert sorted(s.job_id for s in sent) == ["bad1", "bad2", "good"]
    states = {job: webhooks.deliveries(ctx, job)[0].state for job in ("bad1", "good", "bad2")}
    assert states == {"bad1": webhooks.FAILED, "good": webhooks.DELIVERED, "bad2": webhooks.FAILED}
    assert _Receiver.got == ["/good"]


def test_a_try_that_raises_is_recorded_and_ends_failed_without_stopping_the_batch(
    ctx: Context, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = webhooks._post

    def flaky(ctx: Context, url: str, body: bytes, headers: dict[str, str]) -> tuple[str | None, bool]:
        if url.endswith("/boom"):
            raise RuntimeError("something unforeseen")
        return real(ctx, url, body, headers)

    monkeypatch.setattr(webhooks, "_post", flaky)
    stored(ctx, "boom", f"{receiver}/boom", at_s=30)
    stored(ctx, "good", f"{receiver}/good", at_s=20)
    webhooks.deliver_due(ctx)
    assert webhooks.deliveries(ctx, "good")[0].state == webhooks.DELIVERED
    [row] = webhooks.deliveries(ctx, "boom")
    assert row.state == webhooks.PENDING and row.last_error == "RuntimeError: something unforeseen"
    for _ in range(MAX_TRIES + 2):
        poll(ctx)
    [row] = webhooks.deliveries(ctx, "boom")
    assert row.state == webhooks.FAILED and row.tries == MAX_TRIES, (row.state, row.tries)


def test_a_receiver_redirecting_to_a_url_that_cannot_be_sent_is_retried_as_any_redirect(
    ctx: Context, receiver: str
) -> None:
    stored(ctx, "moved", f"{receiver}/moved", at_s=1)
    webhooks.deliver_due(ctx)
    [row] = webhooks.deliveries(ctx, "moved")
    assert row.state == webhooks.PENDING and row.tries == 1, (row.state, row.tries)
    assert row.last_error and row.last_error.startswith("receiver answered a redirect"), row.last_error
    for _ in range(MAX_TRIES + 2):
        poll(ctx)
    [row] = webhooks.deliveries(ctx, "moved")
    assert row.state == webhooks.FAILED and row.tries == MAX_TRIES
