"""Publish one render request to clipline over RabbitMQ, with pika alone (no clipline import).

    python publish_with_pika.py amqp://guest:guest@127.0.0.1:5672/%2F request.json

Prints the job id. Give every request a job_id: it is how you find the job
again (GET /jobs/{job_id}, ``clipline status``), and it makes publishing the
same request twice harmless (a lost confirm, a restart of your publisher).
"""

import json
import sys
import time
import uuid

import pika


def publish(amqp_url: str, request: dict) -> str:
    request = dict(request)
    request.setdefault("job_id", f"job-{uuid.uuid4().hex[:16]}")
    message = {  # Dramatiq's message envelope: these seven fields, no others
        "queue_name": "render.plan",
        "actor_name": "plan_render",
        "args": [request],  # the request object is the one positional argument
        "kwargs": {},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),  # milliseconds since the epoch
    }
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # basic_publish returns only once the broker has the message
        channel.basic_publish(
            exchange="",  # the default exchange routes by queue name
            routing_key="render.plan",
            body=body,
            properties=pika.BasicProperties(delivery_mode=2, content_type="application/json"),
            mandatory=True,  # UnroutableError while there is no queue render.plan (no worker ever started)
        )
    finally:
        connection.close()
    return request["job_id"]


if __name__ == "__main__":
    with open(sys.argv[2], encoding="utf-8") as f:
        print(publish(sys.argv[1], json.load(f)))
