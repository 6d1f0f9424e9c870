"""schemathesis against the OpenAPI document of a real uvicorn: no generated input yields a 5xx."""

from __future__ import annotations

import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from .conftest import Stack, rabbitmqctl
from .test_api import TOKEN, running_api

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25


def test_no_input_makes_the_api_fail_with_a_server_error(stack: Stack) -> None:
    # Bodies that happen to be valid are enqueued: into a vhost of their own that no worker reads.
    vhost = f"clipline-fuzz-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        with running_api(stack, CLIPLINE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}") as api:
            schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            tried: dict[str, set[int]] = {}
            for result in schema.get_all_operations():
                operation = result.ok()
                label = f"{operation.method.upper()} {operation.path}"
                tried[label] = set()

                @given(case=operation.as_strategy())
                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def call(case: schemathesis.Case) -> None:
                    response = case.call(base_url=str(api.base_url), headers=headers)
                    tried[f"{case.method.upper()} {case.path}"].add(response.status_code)
                    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"

                call()
    finally:
        rabbitmqctl("delete_vhost", vhost)
    # Every operation of the document was exercised, and the errors it found were client errors
    assert {"POST /jobs", "GET /jobs/{job_id}", "POST /jobs/{job_id}/retry", "GET /stats"} <= set(tried)
    assert all(tried.values())
    assert 422 in tried["POST /jobs"] and 404 in tried["GET /jobs/{job_id}"]
