"""docs/schemas/v1/request.schema.json types every time and the output's fps as "integer"; DESIGN.md: "Bad
input gets a clear error naming the field and nothing is enqueued"; README: `parse_request` is "the single
validation gate used by the CLI, the HTTP API and the plan actor"."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeline.errors import RequestInvalid
from pipeline.models import parse_request

from .helpers import schema_errors

GOOD: dict[str, Any] = {
    "job_id": "types-1",
    "output": {"width": 320, "height": 180, "fps": 30},
    "lines": [
        {"text": "a", "start_ms": 0, "end_ms": 1000, "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000}}
    ],
}


def test_booleans_and_strings_are_not_accepted_as_times_or_fps() -> None:
    """The request validator accepts `true` as fps 1, `false`/`"0"` as 0 ms and `"1000"` as 1000 ms, all of
    which the published request schema (type integer) refuses, so the schema and the gate disagree."""
    bad = copy.deepcopy(GOOD)
    bad["output"]["fps"] = True
    bad["lines"][0]["start_ms"] = "0"
    bad["lines"][0]["clip"]["start_ms"] = False
    bad["lines"][0]["clip"]["end_ms"] = "1000"
    assert schema_errors("request.schema.json", GOOD) == []
    refused_by_schema = schema_errors("request.schema.json", bad)
    assert len(refused_by_schema) == 4, refused_by_schema

    with pytest.raises(RequestInvalid) as caught:
        accepted = parse_request(bad)
        print("accepted as:", accepted.output.fps, accepted.lines[0].start_ms, accepted.lines[0].clip)
    fields = {p.field for p in caught.value.problems}
    assert {"output.fps", "lines[0].start_ms", "lines[0].clip.start_ms", "lines[0].clip.end_ms"} <= fields
