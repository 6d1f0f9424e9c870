"""Callbacks to the request's ``callback_url`` when a job reaches a final state.

Each final state of each attempt is queued once (a unique row per job,
attempt and status), then POSTed as JSON (``CallbackPayload``; its schema is
published in ``docs/schemas/``) with, when ``CLIPLINE_WEBHOOK_SECRET`` is set,
the Standard Webhooks headers (``webhook_signing``):

- ``webhook-id``: the delivery id (the same on every try of it);
- ``webhook-timestamp``: when this try was signed (Unix seconds);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``;

and always ``X-Clipline-Delivery`` (the delivery id) and ``X-Clipline-Event:
job.finished``. ``X-Clipline-Signature`` (``sha256=<hex HMAC of the body>``,
no timestamp, so a captured callback could be replayed) is still sent for one
release and is deprecated.

A try is claimed with a compare-and-set on the row before it is sent, so two
workers never send the same delivery at once. A receiver that does not answer
2xx is tried again after ``webhook_backoff_s`` x 2^(tries-1) (at most 10
minutes), up to ``webhook_max_attempts`` tries. A URL httpx cannot send to (a control
character, an invalid IDNA label: rows stored before the request check refused them) fails
at once, like a URL the network policy refuses; a try that raises anything else is recorded
and counts; one row's failure never stops the rest of a batch. The only way a receiver sees a
delivery twice is a worker dying between the receiver's 2xx and the row's
update; the delivery id lets it drop the repeat.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import structlog
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from . import hop, netguard, redact, results, webhook_signing
from .context import Context
from .models import SCHEMA_VERSION, JobStatus, Quality
from .problems import url_problem
from .records import UtcDatetime
from .storage import StorageError
from .tables import RenderJob, WebhookDelivery, utcnow

log = structlog.get_logger("clipline.webhook")

LEGACY_SIGNATURE_HEADER = webhook_signing.LEGACY_SIGNATURE_HEADER  # deprecated
DELIVERY_HEADER = "X-Clipline-Delivery"
EVENT_HEADER = "X-Clipline-Event"
EVENT: Literal["job.finished"] = "job.finished"
MAX_BACKOFF_S = 600.0
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class CallbackSummary(BaseModel):
    """The report's summary without the missing-footage detail (``GET /jobs/{id}/report`` has it)."""

    slots: int
    ok: int
    local: int
    placeholder: int
    failed: int
    text: list[str]


class CallbackPayload(BaseModel):
    """The JSON body of a callback."""

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["job.finished"] = Field(default=EVENT, description="the Standard Webhooks event type")
    event: Literal["job.finished"] = Field(default=EVENT, description="the same as type (kept for receivers)")
    timestamp: UtcDatetime = Field(description="when the delivery was queued")
    delivery_id: str = Field(description="the same as the webhook-id header; drop repeats by it")
    job_id: str
    mix_request_id: str | None
    trace_id: str
    status: JobStatus
    attempt: int
    output_path: str | None
    report_path: str | None
    quality: Quality = Field(
        default="final",
        description='the request\'s output.quality: "draft" is a quarter of the pixels, for review only',
    )
    output_url: str | None = Field(description="where to download final.mp4 (as in the status object)")
    report_url: str | None = Field(description="where to download report.json")
    poster_url: str | None = Field(description="a frame from the middle of the video, JPEG")
    error: str | None
    finished_at: UtcDatetime | None
    metadata: dict[str, Any] | None = Field(description="the request's metadata, unchanged")
    report_summary: CallbackSummary | None


def payload(ctx: Context, job: RenderJob, delivery_id: str) -> CallbackPayload:
    """The callback's body: the status object's fields, the results' URLs and the report's summary."""
    summary = None
    try:
        report = results.read_report(ctx, job)
        summary = CallbackSummary.model_validate(report.get("summary")) if report else None
    except StorageError as exc:  # the callback still goes out, without the summary
        log.warning("webhook.no_report", job_id=job.id, error=str(exc))
    except ValidationError:
        summary = None
    request = job.request if isinstance(job.request, dict) else {}
    metadata = request.get("metadata")
    urls = results.urls(ctx, job)
    return CallbackPayload(
        timestamp=utcnow(),
        delivery_id=delivery_id,
        job_id=job.id,
        mix_request_id=job.mix_request_id,
        trace_id=job.trace_id,
        status=JobStatus(job.status),
        attempt=job.attempts,
        output_path=job.output_path,
        report_path=job.report_path,
        quality=job.quality,
        output_url=urls.output_url,
        report_url=urls.report_url,
        poster_url=urls.poster_url,
        error=redact.text(job.current_error() or "") or None,
        finished_at=job.finished_at,
        metadata=metadata if isinstance(metadata, dict) else None,
        report_summary=summary,
    )


def callback_url(ctx: Context, job: RenderJob) -> str | None:
    """The job's callback URL, if it has one that passes the request's URL rules (a job recorded from an
    invalid request keeps the raw request, so its URL is checked here again)."""
    url = (job.request or {}).get("callback_url") if isinstance(job.request, dict) else None
    if not isinstance(url, str) or url_problem(url, ctx.settings.allowed_host_set):
        return None
    return url


def signed_headers(secret: str | None, delivery_id: str, body: bytes) -> dict[str, str]:
    """The headers of one try: Standard Webhooks' (signed now) and the deprecated signature, when a secret
    is set; the delivery id and event always."""
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery_id, EVENT_HEADER: EVENT}
    if secret:
        headers |= webhook_signing.headers(webhook_signing.secret_key(secret), delivery_id, body)
        headers[LEGACY_SIGNATURE_HEADER] = webhook_signing.legacy_signature(secret, body)
    return headers


def queue(ctx: Context, job_id: str) -> WebhookDelivery | None:
    """Queue the job's current final state for delivery; None when there is nothing (new) to send."""
    job = ctx.store.get(job_id)
    url = callback_url(ctx, job)
    if not url or not JobStatus(job.status).is_final:
        return None
    delivery_id = uuid.uuid4().hex
    row = WebhookDelivery(
        id=delivery_id,
        job_id=job.id,
        attempt=job.attempts,
        status=job.status,
        url=str(url),
        body=payload(ctx, job, delivery_id).model_dump_json(),
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
    return [sent for row in due if (sent := _try_safely(ctx, row, now)) is not None]


def _try_safely(ctx: Context, row: WebhookDelivery, now: datetime) -> Sent | None:
    """``_try``, logged instead of raised (the database failing mid-try): one row never stops the batch;
    a try it claimed still counts, so the row still ends after the max tries."""
    try:
        return _try(ctx, row, now)
    except Exception as exc:  # noqa: BLE001 - the next poll tries the row again
        log.warning(
            "webhook.error", job_id=row.job_id, delivery_id=row.id, error=f"{type(exc).__name__}: {exc}"
        )
        return None


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
        if callback_url(ctx, job) and (job.id, job.attempts, job.status) not in known:
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


def _post(ctx: Context, url: str, body: bytes, headers: dict[str, str]) -> tuple[str | None, bool]:
    """(error or None, whether the URL is refused by the network policy or cannot be sent: retrying
    cannot help).

    One hop only (a redirect is an error, never followed), its address checked by netguard, the
    whole exchange within webhook_timeout_s, and the receiver's body never read.
    """
    s = ctx.settings
    request: httpx.Request | None = None
    try:
        netguard.check_url(url, netguard.Policy.of(s))
        with netguard.deadline(s.webhook_timeout_s), netguard.client(
            netguard.Policy.of(s), s.webhook_timeout_s
        ) as client:
            client.event_hooks = {"response": [hop.note_location]}
            request = client.build_request("POST", url, content=body, headers=headers)
            response = client.send(request, stream=True)
            response.close()
    except netguard.Refused as exc:
        return str(exc), True
    except httpx.HTTPError as exc:
        return redact.text(f"{type(exc).__name__}: {exc}"), False
    except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError (an invalid IDNA label) is a ValueError
        why = redact.text(f"{type(exc).__name__}: {exc}")
        if request is not None and hop.LOCATION in request.extensions:  # httpx read the redirect's Location
            return f"receiver answered a redirect to a URL that cannot be requested ({why})", False
        return f"the callback URL cannot be sent ({why})", True
    if not response.is_success:
        return f"receiver answered HTTP {response.status_code}", False
    return None, False


def _try(ctx: Context, row: WebhookDelivery, now: datetime) -> Sent | None:
    if not _claim(ctx, row, now):
        return None  # another worker took this try
    s = ctx.settings
    tries = row.tries + 1
    try:
        body = row.body.encode()
        error, refused = _post(ctx, row.url, body, signed_headers(s.webhook_secret, row.id, body))
    except Exception as exc:  # noqa: BLE001 - recorded, and the try counts: the row still ends
        error, refused = redact.text(f"{type(exc).__name__}: {exc}"), False
    values: dict[str, Any]
    if error is None:
        values = {"state": DELIVERED, "delivered_at": utcnow(), "last_error": None}
    elif refused or tries >= s.webhook_max_attempts:
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
