"""Reuse the integration fixtures (a private vhost, Redis db, loopback CDN, sample media, a stack)."""

from tests.integration.conftest import cdn, pg_url, redis_url, samples, stack, vhost  # noqa: F401
