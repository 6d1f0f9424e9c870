"""Contract checks (an outside audit's): the integration suite's services."""

from tests.integration.conftest import cdn, redis_url, samples, stack, vhost  # noqa: F401
