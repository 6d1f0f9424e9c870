"""The coordination cases against the in-memory stand-in (no server)."""

from __future__ import annotations

import pytest
import redis

from tests.coordination_cases import *  # noqa: F403 - the shared cases, collected here with this fixture
from tests.stubs import stub_redis


@pytest.fixture
def r() -> redis.Redis:
    return stub_redis()
