"""Actor glue on a StubBroker: wire names, retry policy, and what each step sends next.

The stage logic is stubbed here; the integration tests run the real thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import dramatiq.common
import pytest
from dramatiq.brokers.stub import StubBroker

from actors import clip as clip_actor
from actors import names
from actors.broker import setup_broker
from pipeline import clipstage
from pipeline.models import ClipRecord
from pipeline.settings import load_settings
from pipeline.stages import Stage


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    settings = load_settings(
        {
            "CLIPLINE_CLIP_MAX_RETRIES": "2",
            "CLIPLINE_RETRY_MIN_BACKOFF_MS": "10",
            "CLIPLINE_RETRY_MAX_BACKOFF_MS": "20",
        }
    )
    b = StubBroker()
    setup_broker(settings, b)
    b.emit_after("process_boot")
    yield b
    b.flush_all()
    b.close()


def run_worker(broker: StubBroker, queue: str) -> None:
    worker = dramatiq.Worker(broker, queues={queue}, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join(queue, fail_fast=False)
        worker.join()
    finally:
        worker.stop()


def test_four_actors_on_four_queues_with_our_retry_policy(broker: StubBroker) -> None:
    got = {n: (broker.get_actor(n).queue_name) for n in broker.get_declared_actors()}
    assert got == {
        "plan_render": "render.plan",
        "extract_clip": "render.clip",
        "fallback_clip": "render.fallback",
        "assemble_render": "render.assemble",
    }
    opts = broker.get_actor("extract_clip").options
    assert (opts["max_retries"], opts["min_backoff"], opts["max_backoff"]) == (2, 10, 20)
    assert broker.get_actor("plan_render").options["max_retries"] == 5  # never Dramatiq's 20


@pytest.mark.parametrize(("bound", "window_ms"), [(1.0, 15_500), (2.0, 25_000)])
def test_the_default_clip_retries_ride_out_a_cdn_blip_of_15_seconds(
    bound: float, window_ms: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the clip actor as the defaults register it, and Dramatiq's jitter at its low and high end
    b = StubBroker()
    setup_broker(load_settings({}), b)
    opts = b.get_actor("extract_clip").options
    monkeypatch.setattr(dramatiq.common, "uniform", lambda low, high: low if bound == 1.0 else high)
    # When every attempt fails for a transient reason, the waits before retries 1..max_retries
    waits = [
        dramatiq.common.compute_backoff(n, factor=opts["min_backoff"], max_backoff=opts["max_backoff"])[1]
        for n in range(opts["max_retries"])
    ]
    b.close()
    # Then the slot goes to the fallback only after 15.5 s at the least (25 s at most): a CDN that drops
    # connections for 10 s no longer turns the clips it hits into placeholders (3 retries: 3.5-7 s)
    assert sum(waits) == window_ms


def _stub_run_clip(monkeypatch: pytest.MonkeyPatch, steps: list[Any], seen: list[dict[str, Any]]) -> None:
    def fake(ctx: Any, job_id: str, index: int, **kw: Any) -> Any:
        seen.append({"job_id": job_id, "index": index, **kw})
        return steps.pop(0)

    monkeypatch.setattr(clip_actor.clipstage, "run_clip", fake)
    monkeypatch.setattr(clip_actor, "context", lambda: FakeCtx())


class FakeLimit:
    @contextmanager
    def slot(self) -> Iterator[int]:
        yield 0


class FakeCtx:
    settings = load_settings({"CLIPLINE_CLIP_MAX_RETRIES": "2"})
    limit = FakeLimit()


def test_permanent_failure_goes_to_fallback_with_its_reason(broker: StubBroker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[dict[str, Any]] = []
    _stub_run_clip(monkeypatch, [clipstage.Fallback("SourceNotFound: 404")], seen)
    broker.get_actor("extract_clip").send("job-a", 3, "trace-1")
    run_worker(broker, names.QUEUE[Stage.CLIP])
    msgs = broker.queues[names.QUEUE[Stage.FALLBACK]]
    assert msgs.qsize() == 1
    msg = dramatiq.Message.decode(msgs.get())
    assert (msg.actor_name, msg.args) == ("fallback_clip", ("job-a", 3, "SourceNotFound: 404", "trace-1"))
    assert seen[0]["attempt"] == 1 and seen[0]["max_attempts"] == 3


def test_transient_failures_retry_with_growing_attempt_numbers(broker: StubBroker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[dict[str, Any]] = []
    record = ClipRecord(0, "ok")
    _stub_run_clip(
        monkeypatch,
        [clipstage.Retry(OSError("503")), clipstage.Retry(OSError("503")), clipstage.Done(record, fire=True)],
        seen,
    )
    broker.get_actor("extract_clip").send("job-b", 0, "t")
    run_worker(broker, names.QUEUE[Stage.CLIP])
    assert [s["attempt"] for s in seen] == [1, 2, 3]
    assert seen[0]["queue_wait_ms"] is not None and seen[1]["queue_wait_ms"] is None
    assemble = broker.queues[names.QUEUE[Stage.ASSEMBLE]]
    assert assemble.qsize() == 1  # the clip that completed the set fires assembly once


def test_done_without_fire_sends_nothing(broker: StubBroker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _stub_run_clip(
        monkeypatch, [clipstage.Done(ClipRecord(1, "ok"), fire=False), clipstage.Skipped("dup")], []
    )
    broker.get_actor("extract_clip").send("job-c", 1, "t")
    broker.get_actor("extract_clip").send("job-c", 1, "t")
    run_worker(broker, names.QUEUE[Stage.CLIP])
    assert broker.queues[names.QUEUE[Stage.ASSEMBLE]].qsize() == 0
    assert broker.queues[names.QUEUE[Stage.FALLBACK]].qsize() == 0


def test_a_clip_sent_with_a_priority_passes_it_to_its_fallback_and_its_retries(
    broker: StubBroker, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Given a clip message sent at priority 4 (the fan-out's), retried once, then given up to fallback
    _stub_run_clip(monkeypatch, [clipstage.Retry(OSError("503")), clipstage.Fallback("gone")], [])
    broker.get_actor("extract_clip").send_with_options(args=("job-p", 2, "t"), broker_priority=4)
    run_worker(broker, names.QUEUE[Stage.CLIP])
    # Then the fallback message carries the same priority
    msg = dramatiq.Message.decode(broker.queues[names.QUEUE[Stage.FALLBACK]].get())
    assert msg.options.get("broker_priority") == 4


def test_send_outside_a_message_has_no_priority_unless_given(broker: StubBroker) -> None:
    from actors.sender import send

    assert "broker_priority" not in send(Stage.ASSEMBLE, "job-q", "t").options
    assert send(Stage.CLIP, "job-q", 0, "t", priority=3).options["broker_priority"] == 3


def test_a_clip_passes_the_attempt_its_message_names_and_its_fallback_carries_the_clips(
    broker: StubBroker, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    seen: list[dict[str, Any]] = []
    # the stage says which attempt it cut for (the message's, or the one it learned for an old message)
    steps: list[Any] = [clipstage.Fallback("gone", 2)]
    _stub_run_clip(monkeypatch, steps, seen)
    clip = broker.get_actor("extract_clip")
    clip.send_with_options(args=("job-f", 0, "t"), **{names.JOB_ATTEMPT: 2})
    run_worker(broker, names.QUEUE[Stage.CLIP])
    assert [s["job_attempt"] for s in seen] == [2]
    # A message queued by a clipline that did not name it: the attempt learned at its first delivery
    # (3) is kept for the broker's retries and its fallback
    steps.extend([clipstage.Retry(OSError("503"), 3), clipstage.Fallback("gone", 3)])
    clip.send("job-f", 1, "t")
    run_worker(broker, names.QUEUE[Stage.CLIP])
    assert [s["job_attempt"] for s in seen] == [2, None, 3]
    fallbacks = broker.queues[names.QUEUE[Stage.FALLBACK]]
    sent = [dramatiq.Message.decode(fallbacks.get()) for _ in range(fallbacks.qsize())]
    assert [(m.args[1], m.options.get(names.JOB_ATTEMPT)) for m in sent] == [(0, 2), (1, 3)]


def test_the_fallback_actor_passes_the_attempt_its_message_names(broker: StubBroker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from actors import fallback as fallback_actor

    seen: list[int | None] = []

    def fake(ctx: Any, job_id: str, index: int, reason: str, **kw: Any) -> Any:
        seen.append(kw["job_attempt"])
        return clipstage.Skipped("superseded")

    monkeypatch.setattr(fallback_actor.clipstage, "run_fallback", fake)
    monkeypatch.setattr(fallback_actor, "context", lambda: FakeCtx())
    fallback = broker.get_actor("fallback_clip")
    fallback.send_with_options(args=("job-g", 0, "gone", "t"), **{names.JOB_ATTEMPT: 4})
    fallback.send("job-g", 0, "gone", "t")
    fallback.send_with_options(args=("job-g", 0, "gone", "t"), **{names.JOB_ATTEMPT: "2"})  # not a number
    run_worker(broker, names.QUEUE[Stage.FALLBACK])
    assert seen == [4, None, None]


def test_send_names_the_attempt_when_given(broker: StubBroker) -> None:
    from actors.sender import send

    assert names.JOB_ATTEMPT not in send(Stage.CLIP, "job-q", 0, "t").options
    assert send(Stage.CLIP, "job-q", 0, "t", job_attempt=2).options[names.JOB_ATTEMPT] == 2
