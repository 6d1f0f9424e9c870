"""The test run's Redis db: never one in use, never shared by two runs."""

from __future__ import annotations

import subprocess

import pytest
import redis

from .redisdb import CLAIM_KEY, HOST, PORT, claimed_db, marker

pytestmark = pytest.mark.integration


def test_two_claims_get_two_dbs_and_a_db_in_use_is_never_taken_or_flushed(redis_url: str) -> None:
    # Given: this run's db (claimed by the fixture) holds a key of someone's
    mine = redis.Redis.from_url(redis_url)
    mine.set("someone:else", "1")
    # When: two more runs claim a db each
    with claimed_db("a") as first, claimed_db("b") as second:
        # Then: three different dbs, each claimed by its run
        assert len({redis_url, first, second}) == 3
        assert redis.Redis.from_url(first).get(CLAIM_KEY).startswith(b"a:")
        assert redis.Redis.from_url(second).get(CLAIM_KEY).startswith(b"b:")
        redis.Redis.from_url(first).set("work", "1")
    # and giving a claim back flushes that db only
    assert redis.Redis.from_url(first).dbsize() == 0
    assert mine.get("someone:else") == b"1"
    mine.delete("someone:else")


def _dead_marker() -> bytes:
    """The marker a test process left before it was killed."""
    proc = subprocess.Popen(["sleep", "30"])
    value = marker("killed-run", proc.pid)
    proc.kill()
    proc.wait()
    return value.encode()


def test_a_db_left_by_a_killed_run_is_flushed_and_taken_over() -> None:
    with claimed_db("setup") as url:
        # Given: a db holding a killed run's marker and keys
        db = int(url.rsplit("/", 1)[1])
        r = redis.Redis.from_url(url)
        r.set(CLAIM_KEY, _dead_marker())
        r.set("clipline:job:left-behind", "1")
        # When: a run looks for a db among that one only
        with claimed_db("next", dbs=range(db, db + 1)) as taken:
            # Then: it takes that db over, emptied but for its own marker
            assert taken == url
            assert r.get(CLAIM_KEY).startswith(b"next:")
            assert r.dbsize() == 1
        assert r.dbsize() == 0


def _live_marker() -> bytes:
    return marker("live-run").encode()


def _other_boot() -> bytes:
    return _dead_marker().replace(b" boot=", b" boot=0-")


def _other_host() -> bytes:
    return _dead_marker().replace(b" host=", b" host=elsewhere-")


@pytest.mark.parametrize(
    "left", [_live_marker, _other_boot, _other_host, lambda: b"pytest:0a1b2c", None],
    ids=["live-process", "another-boot", "another-host", "old-marker", "no-marker"],
)
def test_a_db_not_provably_abandoned_is_left_alone_and_a_private_server_used(left: object) -> None:
    with claimed_db("setup") as url:
        # Given: a db with someone's keys, marked (or not) by something not known to be dead
        db = int(url.rsplit("/", 1)[1])
        r = redis.Redis.from_url(url)
        r.delete(CLAIM_KEY)
        value = left() if callable(left) else None
        if value is not None:
            r.set(CLAIM_KEY, value)
        r.set("someone:else", "1")
        # When: a run looks for a db among that one only
        with claimed_db("next", dbs=range(db, db + 1)) as got:
            # Then: it runs on a private redis-server of its own, empty but writable
            assert not got.startswith(f"redis://{HOST}:{PORT}/")
            private = redis.Redis.from_url(got)
            assert private.dbsize() == 0 and private.set("work", "1")
        # and the db is untouched
        assert r.get("someone:else") == b"1" and r.get(CLAIM_KEY) == value
        r.flushdb()
