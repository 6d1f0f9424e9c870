"""In-memory stand-ins for the services a stage talks to, in the style of Dramatiq's StubBroker.

``stub_redis`` is fakeredis (with Lua, so completion, clip slots and leases run
the very scripts they run on Redis); ``stub_context`` is a worker's Context
over it, a SQLite file and its own directories: a stage can be called in
process without RabbitMQ, Redis or a network. Several contexts on one
``FakeServer`` see the same keys, as several workers share one Redis.
``tests/coordination_cases.py`` holds the stand-in to the real thing's behaviour.
"""

from __future__ import annotations

from pathlib import Path

import fakeredis
import redis

from pipeline.context import Context
from pipeline.observe import NULL_OBSERVER, Observer
from pipeline.settings import load_settings


def stub_redis(server: fakeredis.FakeServer | None = None) -> redis.Redis:
    return fakeredis.FakeRedis(server=server or fakeredis.FakeServer())


def stub_context(
    tmp: Path,
    *,
    server: fakeredis.FakeServer | None = None,
    observer: Observer = NULL_OBSERVER,
    **env: str,
) -> Context:
    """A Context on an in-memory Redis (shared through ``server``) and a SQLite file under ``tmp``."""
    settings = load_settings(
        {
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp / 'clipline.db'}",
            "CLIPLINE_WORK_DIR": str(tmp / "work"),
            "CLIPLINE_OUTPUT_DIR": str(tmp / "output"),
            "CLIPLINE_MEDIA_DIR": str(tmp / "media"),
            "TWELVELABS_API_URL": "http://127.0.0.1:9/v1",  # nothing listens: a stub never reaches out
            **env,
        }
    )
    ctx = Context(settings, observer=observer)
    ctx.redis = stub_redis(server)  # the cached property's value, set before anything uses it
    return ctx
