"""For programs that hand work to clipline over RabbitMQ: ``publish(request, broker_url) -> job_id``.

    from clipline.client import publish
    job_id = publish({"job_id": "mix-1", "lines": [...]}, "amqp://guest:guest@rabbitmq:5672/%2F")

The message format, byte by byte, is in ``docs/CONTRACTS.md`` (with an example
that needs pika only). Follow the job with ``GET /jobs/{job_id}`` or a
``callback_url`` in the request.
"""

from __future__ import annotations

from actors.publish import publish

__all__ = ["publish"]
