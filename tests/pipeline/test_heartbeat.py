"""Liveness of a stage's holder (``pipeline/heartbeat.py``), decided by Redis's clock alone."""

from __future__ import annotations

import time
from types import SimpleNamespace

import fakeredis
import pytest
import redis

from pipeline import heartbeat, keys

JOB, STAGE = "hb-job", "assemble"


@pytest.fixture
def r() -> redis.Redis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def test_a_live_holder_is_alive_whatever_the_readers_wall_clock_says(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a holder beating for the stage
    real = time.time
    with heartbeat.beating(r, JOB, STAGE):
        # When the reading host's clock is 15 s ahead (more than a TTL), or 15 s behind
        for shift in (15.0, -15.0):
            monkeypatch.setattr(heartbeat, "time", SimpleNamespace(time=lambda s=shift: real() + s))
            # Then the holder is alive and not gone
            assert heartbeat.alive(r, JOB, STAGE)
            assert not heartbeat.gone(r, JOB, STAGE)


def test_a_holder_whose_key_ran_out_is_dead_at_once(r: redis.Redis) -> None:
    # A SIGKILLed holder: still listed, its key expired (here: never set)
    r.hset(keys.job_holders(JOB, STAGE), "sigkilled", str(int(time.time() * 1000) + 60_000))
    assert not heartbeat.alive(r, JOB, STAGE)
    assert heartbeat.gone(r, JOB, STAGE)


def test_a_holder_that_stops_beating_is_dead_once_its_ttl_ran_out(r: redis.Redis) -> None:
    token_key = keys.job_holders(JOB, STAGE)
    with heartbeat.beating(r, JOB, STAGE, ttl_s=0.3):
        (token,) = [t.decode() for t in r.hkeys(token_key)]
    # The ended holder is struck off; a SIGKILLed one stays listed with a key that runs out
    assert r.hkeys(token_key) == []
    r.hset(token_key, token, "0")
    r.set(keys.job_holder_beat(JOB, STAGE, token), "1", px=300)
    assert not heartbeat.gone(r, JOB, STAGE, ttl_s=0.3)
    time.sleep(0.4)
    assert heartbeat.gone(r, JOB, STAGE, ttl_s=0.3)


def test_no_holder_at_all_is_dead_only_after_a_whole_ttl(r: redis.Redis) -> None:
    # Nobody listed (Redis lost its state, or the holder has not beaten yet): not dead at first sight
    assert not heartbeat.gone(r, JOB, STAGE, ttl_s=0.3)
    assert not heartbeat.gone(r, JOB, STAGE, ttl_s=0.3)
    time.sleep(0.35)
    assert heartbeat.gone(r, JOB, STAGE, ttl_s=0.3)
    # A holder that beats again is alive, and the wait starts over after it
    with heartbeat.beating(r, JOB, STAGE):
        assert not heartbeat.gone(r, JOB, STAGE, ttl_s=0.3)
    assert not heartbeat.gone(r, JOB, STAGE, ttl_s=0.3)


def test_a_redis_restart_that_lost_everything_never_makes_a_live_holder_dead(r: redis.Redis) -> None:
    with heartbeat.beating(r, JOB, STAGE, ttl_s=0.6):
        for _ in range(4):
            r.flushdb()  # the holder beats again within ttl/3
            assert not heartbeat.gone(r, JOB, STAGE, ttl_s=0.6)
            time.sleep(0.25)
        assert heartbeat.alive(r, JOB, STAGE)
