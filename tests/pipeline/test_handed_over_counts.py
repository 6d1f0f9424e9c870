"""Job ends seen by processes that serve no metrics are counted once by a worker process."""

from __future__ import annotations

import logging

import fakeredis
import pytest
import redis

from pipeline import keys
from pipeline.observe import HandOver, Observer, take_handed_over


class Recording(Observer):
    def __init__(self) -> None:
        self.finished: list[tuple[str, float]] = []

    def job_finished(self, status: str, duration_s: float) -> None:
        self.finished.append((status, duration_s))


def test_a_handed_over_job_end_is_counted_by_one_taker_only(monkeypatch: pytest.MonkeyPatch) -> None:
    server = fakeredis.FakeServer()
    monkeypatch.setattr(redis.Redis, "from_url", lambda url, **kw: fakeredis.FakeRedis(server=server))
    # Given `clipline cancel` and a sweeper ending jobs (neither serves metrics)
    HandOver.from_url("redis://x/1").job_finished("CANCELLED", 12.3456)
    HandOver.from_url("redis://x/1").job_finished("FAILED", 600.0)
    # When two worker processes take them
    r = fakeredis.FakeRedis(server=server)
    first, second = Recording(), Recording()
    assert take_handed_over(r, first, limit=1) == 1
    assert take_handed_over(r, second) == 1
    assert take_handed_over(r, first) == 0
    # Then each end is counted once, in order, with its duration
    assert first.finished == [("CANCELLED", 12.346)] and second.finished == [("FAILED", 600.0)]
    assert r.ttl(keys.job_ends_to_count()) == -2  # nothing left behind


def test_a_garbled_entry_is_dropped_and_the_rest_counted(caplog: pytest.LogCaptureFixture) -> None:
    r = fakeredis.FakeRedis()
    r.rpush(keys.job_ends_to_count(), b"not json", b'["CANCELLED"]', b'["COMPLETED", 3.5]')
    seen = Recording()
    with caplog.at_level(logging.WARNING):
        assert take_handed_over(r, seen) == 3
    assert seen.finished == [("COMPLETED", 3.5)]


def test_the_list_is_bounded_and_an_unreachable_redis_loses_only_the_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = fakeredis.FakeServer()
    monkeypatch.setattr(redis.Redis, "from_url", lambda url, **kw: fakeredis.FakeRedis(server=server))
    monkeypatch.setattr("pipeline.observe.HANDED_OVER_MAX", 3)
    hand = HandOver.from_url("redis://x/1")
    for i in range(5):
        hand.job_finished("FAILED", float(i))
    seen = Recording()
    take_handed_over(fakeredis.FakeRedis(server=server), seen)
    assert seen.finished == [("FAILED", 2.0), ("FAILED", 3.0), ("FAILED", 4.0)]  # the newest kept
    server.connected = False
    hand.job_finished("CANCELLED", 1.0)  # logged, not raised: the job did end
    # and the next ends are not tried while Redis failed moments ago (a sweeper ending many jobs)
    server.connected = True
    hand.job_finished("FAILED", 9.0)
    assert take_handed_over(fakeredis.FakeRedis(server=server), seen) == 0
    monkeypatch.setattr("pipeline.observe.HAND_OVER_PAUSE_S", 0.0)
    hand.job_finished("FAILED", 10.0)  # once the pause is over, handed over again
    assert take_handed_over(fakeredis.FakeRedis(server=server), seen) == 1 and seen.finished[-1][1] == 10.0
