"""docs/CONTRACTS.md says what the code does: the examples in it are the tested files, the message
example is a valid Dramatiq envelope with a valid request, and the error code table is the code's."""

from __future__ import annotations

import json
import re
from pathlib import Path

from clipline.api_errors import STATUS, ErrorCode
from pipeline.models import parse_request
from pipeline.rejects import ENVELOPE_FIELDS, ENVELOPE_OPTIONAL, envelope_problems

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "CONTRACTS.md").read_text()


def test_the_pika_example_is_in_the_document_to_the_byte() -> None:
    assert (ROOT / "docs" / "examples" / "publish_with_pika.py").read_text() in DOC


def test_the_example_message_is_an_envelope_of_a_valid_request() -> None:
    message = json.loads((ROOT / "docs" / "examples" / "message.json").read_text())
    assert envelope_problems(message) == []
    assert set(message) == set(ENVELOPE_FIELDS) | set(ENVELOPE_OPTIONAL)
    assert (message["queue_name"], message["actor_name"], message["kwargs"], message["options"]) == (
        "render.plan",
        "plan_render",
        {},
        {},
    )
    (request,) = message["args"]
    assert parse_request(request).job_id == request["job_id"]


def test_the_rabbitmqadmin_example_publishes_that_message_persistently() -> None:
    (command,) = [line for line in DOC.splitlines() if line.startswith("rabbitmqadmin publish")]
    assert "exchange=amq.default routing_key=render.plan " in command
    properties = json.loads(re.search(r"properties='([^']*)'", command).group(1))  # type: ignore[union-attr]
    assert properties == {"delivery_mode": 2, "content_type": "application/json"}
    assert command.endswith('payload="$(cat docs/examples/message.json)"')


def test_the_error_code_table_is_the_codes_of_the_api() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", DOC, flags=re.M))
    assert rows == {code.value: str(STATUS[code]) for code in ErrorCode}
