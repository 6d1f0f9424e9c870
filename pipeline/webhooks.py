"""Callbacks to the request's ``callback_url`` when a job reaches a final state.

Each final state of each attempt is queued once (a unique row per job,
attempt and status), then POSTed as JSON with:

- ``X-Clipline-Delivery``: the delivery id (the same on every try of it);
- ``X-Clipline-Signature``: ``sha256=<hex HMAC-SHA256 of the body>`` keyed
  with ``CLIPLINE_WEBHOOK_SECRET`` (absent when no secret is set);
- ``X-Clipline-Event``: ``job.finished``.

A try is claimed with a compare-and-set on the row before it is sent, so two
workers never send the same delivery at once. A receiver that does not answer
2xx is tried again after ``webhook_backoff_s`` x 2^(tries-1) (at most 10
minutes), up to ``webhook_max_attempts`` tries. The only way a receiver sees a
delivery twice is a worker dying between the receiver's 2xx and the row's
update; the delivery id lets it drop the repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from . import results
from .context import Context
from .models import JobStatus
from .storage import StorageError
from .tables import RenderJob, WebhookDelivery, utcnow

log = structlog.get_logger("clipline.webhook")

SIGNATURE_HEADER = "X-Clipline-Signature"
DELIVERY_HEADER = "X-Clipline-Delivery"
EVENT_HEADER = "X-Clipline-Event"
EVENT = "job.finished"
MAX_BACKOFF_S = 600.0
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return bool(header) and hmac.compare_digest(sign(secret, body), str(header))


def payload(ctx: Context, job: RenderJob, delivery_id: str) -> dict[str, Any]:
    """The callback's body: the status object's fields, the results' URLs and the report's summary."""
    summary = None
    try:
        report = results.read_report(ctx, job)
    except StorageError as exc:  # the callback still goes out, without the summary
        log.warning("webhook.no_report", job_id=job.id, error=str(exc))
        report = None
    if report is not None:
        summary = {k: v for k, v in report.get("summary", {}).items() if k != "missing_footage"}
    return {
        "event": EVENT,
        "delivery_id": delivery_id,
        "job_id": job.id,
        "mix_request_id": job.mix_request_id,
        "trace_id": job.trace_id,
        "status": job.status,
        "attempt": job.attempts,
        "output_path": job.output_path,
        "report_path": job.report_path,
        **results.urls(ctx, job),
        "error": job.current_error(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "report_summary": summary,
    }


def queue(ctx: Context, job_id: str) -> WebhookDelivery | None:
    """Queue the job's current final state for delivery; None when there is nothing (new) to send."""
    job = ctx.store.get(job_id)
    url = (job.request or {}).get("callback_url")
    if not url or not JobStatus(job.status).is_final:
        return None
    delivery_id = uuid.uuid4().hex
    row = WebhookDelivery(
        id=delivery_id,
        job_id=job.id,
        attempt=job.attempts,
        status=job.status,
        url=str(url),
        body=json.dumps(payload(ctx, job, delivery_id), ensure_ascii=False, sort_keys=True),
        state=PENDING,
        tries=0,
        next_at=utcnow(),
    )
    with ctx.store.session() as s:
        s.add(row)
        try:
            s.commit()
        except IntegrityError:  # this state of this attempt is already queued (or sent)
            s.rollback()
            return None
    log.info("webhook.queued", job_id=job.id, delivery_id=delivery_id, status=job.status)
    return row


@dataclass(frozen=True)
class Sent:
    delivery_id: str
    job_id: str
    state: str
    tries: int
    error: str | None = None


def deliver_due(ctx: Context, *, job_id: str | None = None, limit: int = 50) -> list[Sent]:
    """Try every pending delivery whose time has come (of one job, or all)."""
    now = utcnow()
    stmt = select(WebhookDelivery).where(WebhookDelivery.state == PENDING, WebhookDelivery.next_at <= now)
    if job_id is not None:
        stmt = stmt.where(WebhookDelivery.job_id == job_id)
    with ctx.store.session() as s:
        due = list(s.scalars(stmt.order_by(WebhookDelivery.next_at).limit(limit)))
    return [sent for row in due if (sent := _try(ctx, row, now)) is not None]


def notify(ctx: Context, job_id: str) -> None:
    """Queue the job's final state and make the first try now; never raises (the pump retries)."""
    try:
        if queue(ctx, job_id) is not None:
            deliver_due(ctx, job_id=job_id)
    except Exception as exc:  # noqa: BLE001 - a callback must never fail the job it reports
        log.warning("webhook.error", job_id=job_id, error=f"{type(exc).__name__}: {exc}")


def queue_missed(ctx: Context, *, within_s: float = 86400.0) -> int:
    """Queue final states that never got a delivery (a worker died between finishing a job and queueing)."""
    since = utcnow() - timedelta(seconds=within_s)
    stmt = select(WebhookDelivery.job_id, WebhookDelivery.attempt, WebhookDelivery.status).where(
        WebhookDelivery.created_at >= since - timedelta(hours=1)
    )
    with ctx.store.session() as s:
        known = {(j, a, st) for j, a, st in s.execute(stmt)}
    queued = 0
    for job in ctx.store.finished_since(since):
        if (job.request or {}).get("callback_url") and (job.id, job.attempts, job.status) not in known:
            queued += queue(ctx, job.id) is not None
    return queued


def deliveries(ctx: Context, job_id: str) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
    stmt = stmt.order_by(WebhookDelivery.created_at)
    with ctx.store.session() as s:
        return list(s.scalars(stmt))


def _claim(ctx: Context, row: WebhookDelivery, now: datetime) -> bool:
    """Take the try: bump ``tries`` and push ``next_at`` past this try's timeout (a lease)."""
    lease = now + timedelta(seconds=ctx.settings.webhook_timeout_s + 30)
    stmt = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == row.id,
            WebhookDelivery.state == PENDING,
            WebhookDelivery.tries == row.tries,
        )
        .values(tries=row.tries + 1, next_at=lease)
    )
    with ctx.store.session() as s:
        won = bool(getattr(s.execute(stmt), "rowcount", 0))
        s.commit()
    return won


def _try(ctx: Context, row: WebhookDelivery, now: datetime) -> Sent | None:
    if not _claim(ctx, row, now):
        return None  # another worker took this try
    s = ctx.settings
    tries = row.tries + 1
    body = row.body.encode()
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: row.id, EVENT_HEADER: EVENT}
    if s.webhook_secret:
        headers[SIGNATURE_HEADER] = sign(s.webhook_secret, body)
    error: str | None = None
    try:
        response = httpx.post(row.url, content=body, headers=headers, timeout=s.webhook_timeout_s)
        if not response.is_success:
            error = f"receiver answered HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    values: dict[str, Any]
    if error is None:
        values = {"state": DELIVERED, "delivered_at": utcnow(), "last_error": None}
    elif tries >= s.webhook_max_attempts:
        values = {"state": FAILED, "last_error": error}
    else:
        wait = min(MAX_BACKOFF_S, s.webhook_backoff_s * 2 ** (tries - 1))
        values = {"next_at": utcnow() + timedelta(seconds=wait), "last_error": error}
    with ctx.store.session() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == row.id).values(**values))
        session.commit()
    state = str(values.get("state", PENDING))
    fields = {"job_id": row.job_id, "delivery_id": row.id, "status": row.status, "tries": tries}
    if error is None:
        log.info("webhook.delivered", **fields)
    else:
        log.warning("webhook.failed" if state == FAILED else "webhook.retrying", error=error, **fields)
    return Sent(row.id, row.job_id, state, tries, error)
