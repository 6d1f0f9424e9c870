"""The integration fixtures (vhost, Redis db, loopback CDN, stack with workers), reused by the audit tests."""

from tests.integration.conftest import *  # noqa: F401,F403
from tests.integration.conftest import cdn, pg_url, redis_url, samples, stack, vhost  # noqa: F401
