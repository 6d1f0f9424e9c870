"""The published schemas (docs/schemas/v1/) checked by a second validator made by others: jsonschema-rs (a
Rust implementation, nothing shared with the Python ``jsonschema`` the other tests use). Every schema is
valid for the draft it declares; documents the code writes validate in both; known-bad ones are refused
by both. (fastjsonschema was not used: it knows drafts 4, 6 and 7, not the 2020-12 the files declare.)"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from pipeline import jobs, schemas, webhooks
from pipeline.models import parse_request
from tests.pipeline.test_schemas import DESIGN_EXAMPLE, real_report
from tests.stubs import stub_context

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
FILES = sorted(schemas.MODELS)


def published(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((schemas.ROOT / name).read_text())
    return doc


def errors_rs(name: str, instance: Any) -> list[str]:
    validator = jsonschema_rs.validator_for(published(name), validate_formats=True)
    return [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(instance)]


def errors_py(name: str, instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(published(name), format_checker=jsonschema.FormatChecker())
    return [e.message for e in validator.iter_errors(instance)]


@pytest.mark.parametrize("name", FILES)
def test_every_published_schema_is_valid_for_the_draft_it_declares(name: str) -> None:
    doc = published(name)
    assert doc["$schema"] == DRAFT_2020_12
    assert isinstance(jsonschema_rs.validator_for(doc), jsonschema_rs.Draft202012Validator)
    jsonschema_rs.meta.validate(doc)  # against 2020-12's meta-schema: raises naming what is wrong
    assert jsonschema.validators.validator_for(doc) is jsonschema.Draft202012Validator
    # The meta-schema check can fail: the same file with a keyword of the wrong type is refused
    broken = copy.deepcopy(doc)
    broken["properties"]["schema_version"]["type"] = 5
    assert not jsonschema_rs.meta.is_valid(broken)


def real_documents(tmp: Path) -> dict[str, Any]:
    """A report built by the report code, and a job's status object and callback body as the code writes
    them for a job recorded in a real store (SQLite) and cancelled."""
    ctx = stub_context(tmp)
    request = parse_request(dict(DESIGN_EXAMPLE, metadata={"tenant": "t-7", "tags": ["歌", 1, None]}))
    ctx.store.create_or_get(request)
    job = jobs.cancel(ctx, request.job_id)
    return {
        "request.schema.json": DESIGN_EXAMPLE,
        "report.schema.json": real_report(),
        "job.schema.json": jobs.detail(ctx, job).model_dump(mode="json"),
        "callback.schema.json": webhooks.payload(ctx, job, "d1").model_dump(mode="json"),
    }


def test_documents_the_code_writes_validate_in_both_validators(tmp_path: Path) -> None:
    docs = real_documents(tmp_path)
    assert docs["job.schema.json"]["status"] == docs["callback.schema.json"]["status"] == "CANCELLED"
    for name, doc in docs.items():
        assert errors_rs(name, doc) == [], name
        assert errors_py(name, doc) == [], name


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.pop(key)


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        for step in path[:-1]:
            d = d[step]
        d[path[-1]] = value

    return change


#: (schema, what is wrong, the change that makes a real document wrong)
BAD: list[tuple[str, str, Callable[[dict[str, Any]], None]]] = [
    ("request.schema.json", "no lines", _drop("lines")),
    ("request.schema.json", "a job_id outside the pattern", _set(("job_id",), "../etc")),
    ("request.schema.json", "an unknown field", _set(("colour",), "red")),
    ("request.schema.json", "a time as a string", _set(("lines", 0, "start_ms"), "0")),
    ("request.schema.json", "an odd width", _set(("output", "width"), 1281)),
    ("job.schema.json", "an unknown status", _set(("status",), "DONE")),
    ("job.schema.json", "progress over 100", _set(("progress",), 101)),
    ("job.schema.json", "another schema version", _set(("schema_version",), 2)),
    ("job.schema.json", "no previous_attempts", _drop("previous_attempts")),
    ("job.schema.json", "a timestamp that is not one", _set(("created_at",), "yesterday")),
    ("report.schema.json", "an unknown outcome", _set(("slots", 0, "outcome"), "great")),
    ("report.schema.json", "no summary", _drop("summary")),
    ("report.schema.json", "a line numbered 0", _set(("slots", 0, "line"), 0)),
    ("callback.schema.json", "no delivery_id", _drop("delivery_id")),
    ("callback.schema.json", "attempt as a string", _set(("attempt",), "2")),
]


@pytest.mark.parametrize(("name", "why", "change"), BAD, ids=[f"{n.split('.')[0]}: {w}" for n, w, _ in BAD])
def test_known_bad_documents_are_refused_by_both(
    tmp_path: Path, name: str, why: str, change: Callable[[dict[str, Any]], None]
) -> None:
    doc = copy.deepcopy(real_documents(tmp_path)[name])
    assert errors_rs(name, doc) == []  # valid before the change: the change alone is what is refused
    change(doc)
    assert errors_rs(name, doc), f"jsonschema-rs accepted {why}"
    assert errors_py(name, doc), f"jsonschema accepted {why}"
