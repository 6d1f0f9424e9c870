"""Rejected messages: what an undecodable body is said to hold, and what reject() records, counts and logs
(on the in-memory stand-ins; the integration test publishes real messages to a real worker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline import rejects
from pipeline.errors import FieldProblem
from pipeline.models import JobStatus
from pipeline.observe import Observer
from tests.stubs import stub_context


class Counting(Observer):
    def __init__(self) -> None:
        self.rejected: list[tuple[str, str]] = []

    def message_rejected(self, queue: str, reason: str) -> None:
        self.rejected.append((queue, reason))


def envelope(**over: Any) -> dict[str, Any]:
    return {
        "queue_name": "render.plan",
        "actor_name": "plan_render",
        "args": [{}],
        "kwargs": {},
        "options": {},
        **over,
    }


def test_envelope_problems_name_what_is_missing_unknown_or_mistyped() -> None:
    assert rejects.envelope_problems(envelope(message_id="m", message_timestamp=1)) == []
    assert rejects.envelope_problems([1]) == ["the body is a JSON list, not an object"]
    bad = envelope(args="x", colour=1)
    del bad["kwargs"]
    assert rejects.envelope_problems(bad) == [
        "missing kwargs",
        "unknown field(s) colour",
        "args must be a JSON array",
    ]


def test_what_an_undecodable_body_holds() -> None:
    bare = {"job_id": "j-1", "lines": []}
    request, what = rejects.request_in(json.dumps(bare).encode())
    assert request == bare and what.startswith("a bare request")
    request, what = rejects.request_in(json.dumps(envelope(args=[bare], extra=1)).encode())
    assert request == bare and what == "not a Dramatiq message: unknown field(s) extra"
    request, what = rejects.request_in(b"\xff{nope")
    assert request is None and what.startswith("not valid JSON")


def test_reject_records_a_named_job_once_counts_and_logs(tmp_path: Path) -> None:
    observer = Counting()
    ctx = stub_context(tmp_path, observer=observer)
    problems = [FieldProblem("lines[1].start_ms", "overlaps"), FieldProblem("colour", "unknown")]
    request = {"job_id": "j-1", "mix_request_id": "req-1", "trace_id": "t-1", "lines": "nope"}
    first = rejects.reject(
        ctx, queue="render.plan", reason=rejects.Reason.INVALID_REQUEST, problems=problems, request=request
    )
    again = rejects.reject(
        ctx, queue="render.plan", reason=rejects.Reason.INVALID_REQUEST, problems=problems, request=request
    )
    assert (first.job_id, first.recorded, again.recorded) == ("j-1", True, False)
    job = ctx.store.get("j-1")
    assert job.status == JobStatus.FAILED.value and (job.mix_request_id, job.trace_id) == ("req-1", "t-1")
    assert job.current_error() is not None
    assert "request invalid: lines[1].start_ms: overlaps; colour: unknown" in job.current_error()
    assert observer.rejected == [("render.plan", "invalid_request")] * 2


def test_a_body_that_is_not_json_gives_its_job_id_and_callback_url(tmp_path: Path) -> None:
    ctx = stub_context(tmp_path)
    raw = b'{"args": [{"job_id": "j-2", "callback_url": "http://127.0.0.1:9/hook", "lines": [{"te'
    done = rejects.reject(
        ctx,
        queue="render.plan",
        reason=rejects.Reason.UNDECODABLE,
        problems=[FieldProblem("(message)", "not valid JSON")],
        raw=raw,
        call_back_now=False,
    )
    assert done.recorded and ctx.store.get("j-2").request == {
        "job_id": "j-2",
        "callback_url": "http://127.0.0.1:9/hook",
    }


def test_a_message_without_a_job_id_or_a_conflict_records_nothing(tmp_path: Path) -> None:
    observer = Counting()
    ctx = stub_context(tmp_path, observer=observer)
    nameless = rejects.reject(
        ctx,
        queue="render.plan",
        reason=rejects.Reason.INVALID_REQUEST,
        problems=[FieldProblem("lines", "empty")],
        request={"lines": []},
    )
    conflict = rejects.reject(
        ctx,
        queue="render.plan",
        reason=rejects.Reason.CONFLICT,
        problems=[FieldProblem("job_id", "exists")],
        request={"job_id": "j-3"},
    )
    bad_id = rejects.reject(
        ctx,
        queue="render.plan",
        reason=rejects.Reason.INVALID_REQUEST,
        problems=[FieldProblem("job_id", "bad")],
        request={"job_id": "../x"},
    )
    assert [r.recorded for r in (nameless, conflict, bad_id)] == [False, False, False]
    assert (nameless.job_id, conflict.job_id, bad_id.job_id) == (None, "j-3", None)
    assert [r for _, r in observer.rejected] == ["invalid_request", "conflict", "invalid_request"]
