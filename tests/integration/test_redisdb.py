"""The test run's Redis db: never one in use, never shared by two runs."""

from __future__ import annotations

import pytest
import redis

from .redisdb import CLAIM_KEY, claimed_db

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
