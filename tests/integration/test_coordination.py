"""The coordination cases against the real Redis (the run's own db)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.coordination_cases import *  # noqa: F403 - the shared cases, collected here with this fixture

from .redisdb import wipe

pytestmark = pytest.mark.integration


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    wipe(redis_url)
    yield redis.Redis.from_url(redis_url)
    wipe(redis_url)
