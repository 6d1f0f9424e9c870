"""One real job (workers, loopback CDN, callback receiver, metrics endpoint) held against what README,
CONTRACTS and DESIGN.md promise about its outputs, logs, metrics and callback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract_checks.helpers import schema_errors
from tests.integration.conftest import Stack, build_request, new_job_id, stack_env
from tests.integration.private import free_port
from tests.integration.test_lifecycle import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@dataclass
class Run:
    stack: Stack
    job_id: str
    request: dict[str, Any]
    status: dict[str, Any]
    report: dict[str, Any]
    callbacks: list[dict[str, Any]]
    scrape: str


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, vhost: str, redis_url: str, cdn: Any, samples: Any
) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("onejob")
    env = stack_env(tmp, vhost, redis_url, cdn, samples)
    env["CLIPLINE_WEBHOOK_SECRET"] = SECRET
    stack = Stack(env, tmp, cdn, samples)
    receiver = Receiver(fail_first=0)
    port = free_port()
    try:
        stack.start_workers("--stage", "all", "--concurrency", "2", "--metrics-port", str(port))
        job_id = new_job_id("af")
        picks = [("v_a", 1000 * i, 1000 * i + 900, True) for i in range(3)]
        picks += [("v_local", 0, 900, False), ("v_gone", 0, 900, False), ("v_b", 500, 1400, False)]
        request = build_request(job_id, cdn, picks, line_ms=lambda i: 900)
        request["callback_url"] = receiver.url
        path = tmp / "req.json"
        path.write_text(json.dumps(request, ensure_ascii=False))
        done = stack.cli("submit", str(path), "--wait", "--json", timeout=240)
        assert done.returncode == 0, done.stderr[-1500:]
        status = json.loads(stack.cli("status", job_id, "--json").stdout.strip().splitlines()[-1])
        report = json.loads(Path(status["report_path"]).read_text())
        receiver.wait_for(1, timeout=30)
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        yield Run(stack, job_id, request, status, report, receiver.got, scrape)
    finally:
        stack.stop_workers()
        receiver.close()
        cdn.reset_faults()


def test_job_ends_with_gaps(run: Run) -> None:
    """Evidence the fixture's job ran as intended (one local copy, one placeholder)."""
    assert run.status["status"] == "COMPLETED_WITH_GAPS"


def test_report_and_status_match_their_published_schemas(run: Run) -> None:
    assert schema_errors("report.schema.json", run.report) == []
    assert schema_errors("job.schema.json", run.status) == []


def test_callback_matches_schema_readme_fields_and_signature(run: Run) -> None:
    assert len(run.callbacks) == 1
    got = run.callbacks[0]
    body = json.loads(got["body"])
    assert schema_errors("callback.schema.json", body) == []
    readme_fields = (
        "schema_version type event timestamp delivery_id job_id mix_request_id trace_id status attempt "
        "output_path report_path output_url report_url poster_url error finished_at metadata "
        "report_summary quality"
    ).split()
    assert [f for f in readme_fields if f not in body] == []
    headers = {k.lower(): v for k, v in got["headers"].items()}
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + got["body"]
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split(" ")
    assert headers["webhook-id"] == body["delivery_id"] == headers["x-clipline-delivery"]


def test_every_worker_stdout_line_is_json_with_the_contract_fields(run: Run) -> None:
    bad = []
    for log in run.stack.logs:
        for ln in log.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(ln)
            except ValueError:
                bad.append(ln)
                continue
            if not isinstance(rec, dict) or {"ts", "level", "event", "trace_id", "job_id"} - rec.keys():
                bad.append(ln)
    assert bad == []


def test_job_events_carry_the_requests_trace_id(run: Run) -> None:
    events = [e for e in run.stack.events("twelvelabs.video_clip") if e.get("job_id") == run.job_id]
    assert events and {e["trace_id"] for e in events} == {run.request["trace_id"]}
    finished = [e for e in run.stack.events("job.finished") if e.get("job_id") == run.job_id]
    assert len(finished) == 1 and finished[0]["trace_id"] == run.request["trace_id"]


def test_scrape_has_every_metric_the_readme_names(run: Run) -> None:
    names = (
        "clipline_clips_in_flight clipline_clip_outcomes_total clipline_clip_extract_seconds_bucket "
        "clipline_clip_queue_wait_seconds_bucket "
        "clipline_source_resolutions_total clipline_bytes_fetched_total clipline_jobs_total "
        "clipline_job_duration_seconds_bucket clipline_clip_concurrency clipline_webhook_deliveries "
        "dramatiq_messages_total dramatiq_message_duration_seconds_bucket"
    ).split()
    lines = [ln for ln in run.scrape.splitlines() if ln and not ln.startswith("#")]
    present = {ln.split("{")[0].split(" ")[0] for ln in lines}
    assert [n for n in names if n not in present] == []
    assert 'clipline_clip_outcomes_total{outcome="placeholder"} 1.0' in run.scrape
    assert 'clipline_jobs_total{status="COMPLETED_WITH_GAPS"} 1.0' in run.scrape
    assert 'clipline_webhook_deliveries{state="delivered"} 1.0' in run.scrape


def test_missing_footage_summary_names_the_retry(run: Run) -> None:
    summary = run.report["summary"]
    groups = summary["missing_footage"]
    outcomes = {g.get("outcome") for g in groups}
    assert {"local", "placeholder"} <= outcomes, groups
    for g in groups:
        assert f"clipline retry {run.job_id}" in g["action"]
        assert f"POST /jobs/{run.job_id}/retry" in g["action"]
        for line in g["lines"]:
            assert line["line"] == line["index"] + 1 and line["reason"]
    assert summary["retry"]
