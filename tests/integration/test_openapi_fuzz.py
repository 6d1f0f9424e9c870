"""The OpenAPI document of a real uvicorn is valid, and the server keeps to it: schemathesis generates
requests from the document (valid ones, then invalid ones) and checks every answer's status code,
content type, headers and body against the document, and that none is a server error."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import checks
from schemathesis.generation import GenerationMode

from .conftest import Stack, rabbitmqctl
from .test_api import TOKEN, running_api

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25

#: What the server's answers must keep to. Not positive_data_acceptance: the request's JSON Schema cannot say
#: that lines must not overlap, so a body valid by the schema may rightly be refused (422, naming the field).
CONFORMANCE = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
#: Invalid input (by the document) must be refused with a 4xx.
REJECTION = [checks.not_a_server_error, checks.status_code_conformance, checks.negative_data_rejection]


def test_the_openapi_document_validates(stack: Stack) -> None:
    with running_api(stack) as api:
        doc = api.get("/openapi.json").json()
    validate(doc)  # raises naming what is wrong
    # Generated clients get types: every JSON answer and the request body have a schema
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                for media, content in answer.get("content", {}).items():
                    assert content.get("schema"), f"{method.upper()} {path} {status} {media} has no schema"
    body = doc["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RenderRequest"}
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]


def test_every_answer_keeps_to_the_openapi_document(stack: Stack) -> None:
    # Bodies that happen to be valid are enqueued: into a vhost of their own that no worker reads.
    vhost = f"clipline-fuzz-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    tried: dict[str, set[int]] = {}
    try:
        with running_api(stack, CLIPLINE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}") as api:
            schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for result in schema.get_all_operations():
                operation = result.ok()
                for mode, expected in (
                    (GenerationMode.POSITIVE, CONFORMANCE),
                    (GenerationMode.NEGATIVE, REJECTION),
                ):
                    _exercise(operation, mode, expected, str(api.base_url), headers, tried)
    finally:
        rabbitmqctl("delete_vhost", vhost)
    # Every operation of the document was exercised, and the errors it found were client errors
    assert {"POST /jobs", "GET /jobs/{job_id}", "POST /jobs/{job_id}/retry", "GET /stats"} <= set(tried)
    assert all(tried.values())
    assert {202, 422} <= tried["POST /jobs"] and 404 in tried["GET /jobs/{job_id}"]
    assert 422 in tried["GET /jobs"]  # negative query parameters were generated and refused


def _exercise(
    operation: Any,
    mode: GenerationMode,
    expected: list[Callable[..., Any]],
    base_url: str,
    headers: dict[str, str],
    tried: dict[str, set[int]],
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    tried.setdefault(label, set())
    try:
        strategy = operation.as_strategy(generation_mode=mode)
    except Exception:  # noqa: BLE001 - an operation with nothing to make invalid (no parameters, no body)
        if mode == GenerationMode.NEGATIVE:
            return
        raise

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=headers)
        tried[label].add(response.status_code)
        case.validate_response(response, checks=expected, headers=headers)

    try:
        call()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid by the document (a free-form path parameter only)
        if mode != GenerationMode.NEGATIVE:
            raise
