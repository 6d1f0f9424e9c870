"""Audit F (docs vs behaviour for operators, SRE, upstream): reuse the integration suite's services."""

from tests.integration.conftest import cdn, pg_url, redis_url, samples, vhost  # noqa: F401
