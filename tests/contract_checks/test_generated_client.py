"""An upstream team that knows only ``/openapi.json`` generates a client with openapi-python-client (a
generator made by others) and drives a real ``clipline api`` through it alone: submit, status, list,
cancel, retry, and the error answers parsed as the documented ``ErrorBody``. No worker runs: the job
stays PENDING in a vhost of its own until it is cancelled.

Every answer is parsed by the generated code into its typed model; a field the document does not name
lands in the model's ``additional_properties``, so each parsed model (metadata aside, which is the
caller's own object) must have none."""

from __future__ import annotations

import importlib
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import Stack, build_request, rabbitmqctl, stack_env
from tests.integration.test_api import TOKEN, running_api

from .test_schemas_second_validator import errors_rs

pytestmark = pytest.mark.integration

PACKAGE = "clipline_generated_client"


class Generated:
    """The generated package, its operations and its models, and the base URL of the API it talks to."""

    def __init__(self, root: ModuleType, base_url: str, stack: Stack, document: dict[str, Any]) -> None:
        self.base_url, self.stack, self.document = base_url, stack, document
        self.client = root.AuthenticatedClient(
            base_url=base_url, token=TOKEN, raise_on_unexpected_status=True
        )
        self.api = importlib.import_module(f"{PACKAGE}.api.default")
        self.models = importlib.import_module(f"{PACKAGE}.models")

    def op(self, name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.default.{name}")


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, cdn: Any, samples: Any
) -> Iterator[Generated]:
    """A real API (its own vhost that no worker reads), and a client generated from its /openapi.json."""
    tmp = tmp_path_factory.mktemp("codegen")
    vhost = f"clipline-codegen-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    stack = Stack(stack_env(tmp, vhost, redis_url, cdn, samples), tmp, cdn, samples)
    try:
        with running_api(stack) as api:
            document = tmp / "openapi.json"
            document.write_bytes(api.get("/openapi.json").raise_for_status().content)
            config = tmp / "codegen.yaml"
            config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
            out = tmp / "client" / PACKAGE
            done = subprocess.run(
                [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document)]
                + ["--output-path", str(out), "--meta", "none", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            # The generator warns (and leaves out what it could not type) on stdout; it must say nothing
            assert done.returncode == 0 and "Warning" not in done.stdout + done.stderr, (
                done.stdout + done.stderr
            )
            sys.path.insert(0, str(out.parent))
            try:
                yield Generated(
                    importlib.import_module(PACKAGE),
                    str(api.base_url),
                    stack,
                    json.loads(document.read_text()),
                )
            finally:
                sys.path.remove(str(out.parent))
                for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
                    del sys.modules[name]
    finally:
        stack.stop_workers()
        rabbitmqctl("delete_vhost", vhost)


def no_unknown_fields(model: Any, where: str = "") -> None:
    """Every field of the answer was named by the document: nothing fell into ``additional_properties``
    (the caller's metadata aside, which is free-form)."""
    if hasattr(model, "additional_properties") and not type(model).__name__.endswith("MetadataType0"):
        assert model.additional_properties == {}, f"{where or type(model).__name__}: undocumented fields"
    for name in getattr(type(model), "__attrs_attrs__", ()):
        value = getattr(model, name.name)
        for item in value if isinstance(value, list) else [value]:
            if hasattr(type(item), "__attrs_attrs__"):
                no_unknown_fields(item, f"{where or type(model).__name__}.{name.name}")


def request_model(g: Generated, job_id: str, lines: int = 2, **extra: Any) -> Any:
    """A render request built with the generated models (as the upstream team's code builds it)."""
    m = g.models
    body = m.RenderRequest(
        job_id=job_id,
        mix_request_id=f"req-{job_id}",
        output=m.OutputProfile(width=320, height=180, fps=30),
        lines=[
            m.Line(
                text=f"第{i + 1}句",
                start_ms=1000 * i,
                end_ms=1000 * i + 1000,
                clip=m.ClipWindow(
                    video_id="v_a", start_ms=0, end_ms=1000, hls_url="http://127.0.0.1:9/v_a.m3u8"
                ),
            )
            for i in range(lines)
        ],
        **extra,
    )
    metadata = m.RenderRequestMetadataType0()
    metadata.additional_properties = {"tenant": "t-7", "tags": ["歌", 1, None]}
    body.metadata = metadata
    return body


def error_of(g: Generated, response: Any, status: int, code: str) -> Any:
    """The generated client parsed the answer as the documented ErrorBody, with its stable code."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, g.models.ErrorBody), response.content
    detail = response.parsed.error
    assert detail.code == g.models.ErrorCode(code) and detail.message
    no_unknown_fields(response.parsed)
    return detail


def test_a_job_through_the_generated_client_alone(generated: Generated) -> None:
    g, m = generated, generated.models
    job_id = f"codegen-{secrets.token_hex(5)}"
    body = request_model(g, job_id)

    created = g.op("submit_jobs_post").sync_detailed(client=g.client, body=body)
    assert created.status_code == 202 and isinstance(created.parsed, m.Job), created.content
    assert created.headers["location"] == f"/jobs/{job_id}"
    job = created.parsed
    assert (job.job_id, job.status, job.attempt, job.schema_version) == (job_id, m.JobStatus.PENDING, 1, 1)
    assert isinstance(job.created_at, datetime) and job.created_at.utcoffset() is not None
    assert job.metadata.additional_properties == {"tenant": "t-7", "tags": ["歌", 1, None]}
    no_unknown_fields(job)

    # The same body again: the existing job (200); the same job_id with another body: job_conflict
    again = g.op("submit_jobs_post").sync_detailed(client=g.client, body=request_model(g, job_id))
    assert again.status_code == 200 and isinstance(again.parsed, m.Job) and again.parsed.job_id == job_id
    other = request_model(g, job_id, lines=1)
    error_of(g, g.op("submit_jobs_post").sync_detailed(client=g.client, body=other), 409, "job_conflict")

    status = g.op("status_jobs_job_id_get").sync_detailed(job_id, client=g.client)
    assert status.status_code == 200 and isinstance(status.parsed, m.JobDetail), status.content
    detail = status.parsed
    assert detail.status == m.JobStatus.PENDING and detail.progress == 0 and detail.previous_attempts == []
    assert detail.finished_at is None and isinstance(detail.updated_at, datetime)
    no_unknown_fields(detail)
    # The raw answer is the published job status object, by the second validator too
    assert errors_rs("job.schema.json", json.loads(status.content)) == []

    listed = g.op("list_jobs_jobs_get").sync_detailed(client=g.client, status=m.JobStatus.PENDING, limit=500)
    assert listed.status_code == 200 and isinstance(listed.parsed, m.JobList), listed.content
    assert job_id in [j.job_id for j in listed.parsed.jobs] and listed.parsed.limit == 500
    no_unknown_fields(listed.parsed)
    by_request = g.op("list_jobs_jobs_get").sync(client=g.client, mix_request_id=f"req-{job_id}")
    assert [j.job_id for j in by_request.jobs] == [job_id]

    report = g.op("report_jobs_job_id_report_get").sync_detailed(job_id, client=g.client)
    error_of(g, report, 404, "report_not_ready")

    # A PENDING job is not retryable; cancelled, it is, and a second cancel is refused
    error_of(
        g,
        g.op("retry_jobs_job_id_retry_post").sync_detailed(job_id, client=g.client),
        409,
        "job_not_retryable",
    )
    cancelled = g.op("cancel_jobs_job_id_cancel_post").sync_detailed(job_id, client=g.client)
    assert cancelled.status_code == 200 and isinstance(cancelled.parsed, m.Job), cancelled.content
    assert cancelled.parsed.status == m.JobStatus.CANCELLED and cancelled.parsed.finished_at is not None
    no_unknown_fields(cancelled.parsed)
    error_of(
        g, g.op("cancel_jobs_job_id_cancel_post").sync_detailed(job_id, client=g.client), 409, "job_finished"
    )

    retried = g.op("retry_jobs_job_id_retry_post").sync_detailed(job_id, client=g.client)
    assert retried.status_code == 202 and isinstance(retried.parsed, m.RetriedJob), retried.content
    assert (retried.parsed.status, retried.parsed.attempt) == (m.JobStatus.PENDING, 2)
    assert retried.parsed.retried_slots == [0, 1] and retried.headers["location"] == f"/jobs/{job_id}"
    no_unknown_fields(retried.parsed)
    after_raw = g.op("status_jobs_job_id_get").sync_detailed(job_id, client=g.client)
    assert errors_rs("job.schema.json", json.loads(after_raw.content)) == []
    after = after_raw.parsed
    assert isinstance(after, m.JobDetail) and after.attempt == 2
    assert [a.status for a in after.previous_attempts] == [m.JobStatus.CANCELLED]
    no_unknown_fields(after)
    g.op("cancel_jobs_job_id_cancel_post").sync(job_id, client=g.client)  # nothing left queued to render


def test_error_answers_parse_as_the_documented_error_body(generated: Generated) -> None:
    g, m = generated, generated.models
    missing = error_of(
        g, g.op("status_jobs_job_id_get").sync_detailed("nope", client=g.client), 404, "job_not_found"
    )
    assert missing.field is None
    error_of(
        g, g.op("cancel_jobs_job_id_cancel_post").sync_detailed("nope", client=g.client), 404, "job_not_found"
    )

    # Invalid by clipline's rules (times backwards, overlapping lines), not by the types: every problem named
    body = request_model(g, f"codegen-{secrets.token_hex(5)}")
    body.lines[0].end_ms = 0
    invalid = error_of(
        g, g.op("submit_jobs_post").sync_detailed(client=g.client, body=body), 422, "request_invalid"
    )
    assert invalid.field == "lines[0].end_ms" and isinstance(invalid.problems, list)
    assert all(isinstance(p, m.Problem) and p.field and p.message for p in invalid.problems)
    assert "lines[0].end_ms" in [p.field for p in invalid.problems]

    # A query parameter out of range is FastAPI's own refusal: the same ErrorBody, naming the parameter
    bad_limit = g.op("list_jobs_jobs_get").sync_detailed(client=g.client, limit=0)
    assert error_of(g, bad_limit, 422, "request_invalid").field == "limit"

    # Without the token: 401 unauthorized, parsed the same way
    anonymous = importlib.import_module(PACKAGE).Client(base_url=g.base_url, raise_on_unexpected_status=True)
    error_of(g, g.op("list_jobs_jobs_get").sync_detailed(client=anonymous), 401, "unauthorized")


def test_each_answer_names_each_error_code_once(generated: Generated) -> None:
    """The generated functions' docstrings carry each answer's description: the codes it lists are each
    named once (GET /jobs/{id}/report's 503 read "`unavailable` or `unavailable`")."""
    for path, ops in generated.document["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                codes = re.findall(r"`([a-z_]+)`", answer["description"])
                assert len(codes) == len(set(codes)), (
                    f"{method.upper()} {path} {status}: {answer['description']}"
                )


def test_a_rendered_job_and_its_report_through_the_generated_client(generated: Generated) -> None:
    """A worker renders a two-line job (one video gone: a placeholder); its status, report.json and
    retry are read through the generated client, and the raw report validates by the second validator.
    Runs last in this module: the jobs above were cancelled, so their queued plans render nothing."""
    g, m = generated, generated.models
    g.stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = f"codegen-{secrets.token_hex(5)}"
    raw = build_request(
        job_id, g.stack.cdn, [("v_a", 0, 900, True), ("v_gone", 0, 900, False)], line_ms=lambda i: 1000
    )
    raw.pop("audio")
    body = m.RenderRequest.from_dict(raw)
    assert g.op("submit_jobs_post").sync_detailed(client=g.client, body=body).status_code == 202
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job = g.op("status_jobs_job_id_get").sync(job_id, client=g.client)
        assert isinstance(job, m.JobDetail)
        if job.status in (m.JobStatus.COMPLETED, m.JobStatus.COMPLETED_WITH_GAPS, m.JobStatus.FAILED):
            break
        time.sleep(0.2)
    assert job.status == m.JobStatus.COMPLETED_WITH_GAPS and job.progress == 100, job.error
    assert isinstance(job.clips, m.ClipCounts) and (job.clips.succeeded, job.clips.placeholder) == (1, 1)
    assert isinstance(job.clip_stats, m.ClipStats) and isinstance(job.finished_at, datetime)
    no_unknown_fields(job)

    report = g.op("report_jobs_job_id_report_get").sync_detailed(job_id, client=g.client)
    assert report.status_code == 200 and isinstance(report.parsed, m.Report), report.content
    assert [s.outcome for s in report.parsed.slots] == [m.ClipOutcome.OK, m.ClipOutcome.PLACEHOLDER]
    assert report.parsed.summary.missing_footage[0].lines[0].line == 2
    no_unknown_fields(report.parsed)
    assert errors_rs("report.schema.json", json.loads(report.content)) == []

    retried = g.op("retry_jobs_job_id_retry_post").sync(job_id, client=g.client)
    assert isinstance(retried, m.RetriedJob) and retried.retried_slots == [1]
    g.op("cancel_jobs_job_id_cancel_post").sync(job_id, client=g.client)
    assert g.stack.actor_errors() == []


def test_the_results_routes_errors_parse_as_the_documented_error_body(generated: Generated) -> None:
    """GET /jobs/{id}/video and /poster answer errors in the one ErrorBody shape (README: "Every error,
    FastAPI's own included"); the document must say so for a generated client to read them."""
    g = generated
    results = importlib.import_module(f"{PACKAGE}.api.results")
    for name in ("get_job_video", "get_job_poster"):
        op = importlib.import_module(f"{results.__name__}.{name}")
        error_of(g, op.sync_detailed("nope", client=g.client), 404, "job_not_found")
        anonymous = importlib.import_module(PACKAGE).Client(
            base_url=g.base_url, raise_on_unexpected_status=True
        )
        error_of(g, op.sync_detailed("nope", client=anonymous), 401, "unauthorized")
