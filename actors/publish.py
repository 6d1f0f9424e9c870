"""Publishing a render request to ``render.plan`` from any Python program (``clipline.client.publish``).

What goes on the wire is what ``docs/CONTRACTS.md`` documents: Dramatiq's
JSON message envelope for ``plan_render`` with the request as its one
argument, persistent, on the default exchange with routing key
``render.plan``, with publisher confirms. Dramatiq's own RabbitMQ broker does
the publishing, so the queue (and its ``.DQ``/``.XQ`` companions) is declared
exactly as the workers declare it.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from pipeline.errors import ServiceUnavailable
from pipeline.models import RenderRequest, parse_request
from pipeline.stages import Stage

from . import names
from .rabbit import PriorityBroker


def publish(request: dict[str, Any] | RenderRequest, broker_url: str, *, max_lines: int = 500) -> str:
    """Validate ``request`` here (raises RequestInvalid listing every problem: nothing is sent), give it a
    job_id when it has none, publish it with a publisher confirm, and return the job_id.

    Publishing the same request again is harmless: the job_id is the idempotency key. Raises
    ServiceUnavailable when the broker cannot be reached or does not confirm. The workers validate
    again with their own settings (``CLIPLINE_MAX_LINES``, ``CLIPLINE_ALLOWED_HOSTS``); a request they
    refuse is recorded as FAILED with the fields named.
    """
    req = request if isinstance(request, RenderRequest) else parse_request(request, max_lines=max_lines)
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=names.QUEUE[Stage.PLAN],
        actor_name=names.ACTOR[Stage.PLAN],
        args=(req.model_dump(mode="json"),),
        kwargs={},
        options={},
    )
    broker = PriorityBroker(url=broker_url, confirm_delivery=True, middleware=[])
    try:
        broker.enqueue(message)
    except dramatiq.errors.BrokerConnectionError as exc:
        raise ServiceUnavailable(f"the broker at {_safe(broker_url)} cannot be reached: {exc}") from exc
    finally:
        broker.close()
    return req.job_id


def _safe(url: str) -> str:
    """The broker URL without its password, for an error message."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port or 5672}{parts.path}"
