"""The reconciler's reading of the clip stages' queues (``actors.queues.clip_backlog``) on a real
RabbitMQ: a job whose clips wait behind others is not taken for stuck while those queues hold messages
and each has a consumer (``pipeline.reconcile``; the rule itself: tests/pipeline/test_job_faults.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from actors import names
from actors.queues import clip_backlog, expected_arguments
from pipeline.reconcile import Backlog
from pipeline.settings import Settings, load_settings
from pipeline.stages import Stage

from .conftest import private_vhost

pytestmark = pytest.mark.integration


@pytest.fixture
def own_vhost() -> Iterator[str]:
    with private_vhost("backlog") as name:
        yield name


def settings_for(vhost: str) -> Settings:
    return load_settings({"CLIPLINE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}"})


def test_the_backlog_counts_clip_and_fallback_messages_and_the_fewer_consumers(own_vhost: str) -> None:
    settings = settings_for(own_vhost)
    # Given no stage queue declared yet (no worker ever started): nothing waits, nobody consumes
    assert clip_backlog(settings) == Backlog(waiting=0, consumers=0)
    conn = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
    try:
        ch = conn.channel()
        for stage in (Stage.CLIP, Stage.FALLBACK):
            queue = names.QUEUE[stage]
            ch.queue_declare(queue, durable=True, arguments=expected_arguments(queue))
        ch.queue_declare(names.delay_queue(Stage.CLIP), durable=True)
        # When 3 clip messages are ready, 1 is delayed and 2 fallback messages are ready
        for _ in range(3):
            ch.basic_publish("", names.QUEUE[Stage.CLIP], b"{}")
        ch.basic_publish("", names.delay_queue(Stage.CLIP), b"{}")
        for _ in range(2):
            ch.basic_publish("", names.QUEUE[Stage.FALLBACK], b"{}")
        # and only the clip queue has a consumer (one that takes nothing: prefetch 0 never arms)
        consumer = conn.channel()
        consumer.basic_qos(prefetch_count=1)
        consumer.basic_consume(names.QUEUE[Stage.CLIP], lambda *_: None)
        conn.process_data_events(time_limit=0.5)
        # Then every waiting message counts, but the fallback stage has no consumer
        got = clip_backlog(settings)
        assert got is not None and got.consumers == 0
        assert got.waiting in (5, 6)  # the consumer may hold one clip message unacknowledged
        # When the fallback queue gets a consumer too, the stages are moving
        other = conn.channel()
        other.basic_qos(prefetch_count=1)
        other.basic_consume(names.QUEUE[Stage.FALLBACK], lambda *_: None)
        conn.process_data_events(time_limit=0.5)
        got = clip_backlog(settings)
        assert got is not None and got.consumers == 1 and got.waiting in (4, 5, 6)
    finally:
        conn.close()


def test_a_broker_that_does_not_answer_gives_no_backlog() -> None:
    # a port nothing listens on: the reconciler then counts its repairs as before
    settings = load_settings({"CLIPLINE_BROKER_URL": "amqp://guest:guest@127.0.0.1:9/%2F"})
    assert clip_backlog(settings, timeout_s=1.0) is None
