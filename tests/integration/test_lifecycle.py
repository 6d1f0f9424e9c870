"""A job's life after its first render, through a real uvicorn with real workers: webhooks, retry of the
slots that lack footage once the video is back, history, statistics, listing and retention."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks

from clipline.dev.samples import count_frames
from pipeline.models import parse_request
from pipeline.store import JobStore
from pipeline.webhook_signing import legacy_signature, secret_for_receivers
from pipeline.webhooks import DELIVERY_HEADER, LEGACY_SIGNATURE_HEADER

from .conftest import Stack, build_request, new_job_id
from .test_api import running_api

pytestmark = pytest.mark.integration

SECRET = "webhook-secret"
FINAL = ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED", "CANCELLED")


class Receiver:
    """A loopback webhook receiver that answers 500 to its first ``fail_first`` requests."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    outer.got.append({"headers": dict(self.headers), "body": body})
                    code = 500 if len(outer.got) <= outer.fail_first else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/render"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(g["body"]) for g in self.got]

    def wait_for(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.payloads()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)
    yield r
    r.close()


def poll_final(api: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {job}")


def test_webhooks_retry_of_gaps_history_stats_and_cleanup(stack: Stack, receiver: Receiver) -> None:
    webhook_env = {
        "CLIPLINE_WEBHOOK_SECRET": SECRET,
        "CLIPLINE_WEBHOOK_BACKOFF_S": "0.2",
        "CLIPLINE_WEBHOOK_POLL_S": "0.2",
    }
    stack.env.update(webhook_env)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("life")
    # Given a job whose slots 1, 3 and 5 come from a video that is gone (API and CDN answer 404)
    body = build_request(
        job_id,
        stack.cdn,
        [(vid, 1000 * i, 1000 * i + 900, vid == "v_a") for i, vid in enumerate(["v_a", "v_b"] * 3)],
        line_ms=lambda i: 1000,
        audio=False,
    )
    body["callback_url"] = receiver.url
    body["metadata"] = {"caller": "lifecycle"}
    stack.cdn.set_gone("v_b")
    with running_api(stack, **webhook_env) as api:
        assert api.post("/jobs", json=body).status_code == 202
        first = poll_final(api, job_id)
        assert first["status"] == "COMPLETED_WITH_GAPS" and first["attempt"] == 1
        report_1 = api.get(f"/jobs/{job_id}/report").json()
        watched = stack.cli("status", job_id, "--watch")
        assert "clips 6/6 (ok 3, local 0, placeholder 3, failed 0)" in watched.stderr, watched.stderr
        assert [s["outcome"] for s in report_1["slots"]] == ["ok", "placeholder"] * 3
        # The gap job keeps its clips for a retry; its temporary segments are gone
        work = stack.tmp / "work" / job_id
        assert sorted(p.name for p in (work / "clips").glob("*.mp4")) == [f"{i:04d}.mp4" for i in range(6)]
        assert not (work / "segments").exists()

        # Then the callback was refused once (500), tried again, delivered: one delivery id, signed body
        hooks = receiver.wait_for(2)
        assert len(hooks) == 2 and {h["status"] for h in hooks} == {"COMPLETED_WITH_GAPS"}
        assert len({g["headers"][DELIVERY_HEADER] for g in receiver.got}) == 1
        # Each try verifies as Standard Webhooks with the receiver's own library (timestamp checked), and
        # its webhook-id is the delivery id; the deprecated signature is still there for one release
        verifier = standardwebhooks.Webhook(secret_for_receivers(SECRET))
        for got in receiver.got:
            assert verifier.verify(got["body"], got["headers"])["delivery_id"] == got["headers"]["webhook-id"]
            assert got["headers"][LEGACY_SIGNATURE_HEADER] == legacy_signature(SECRET, got["body"])
        first_hook = receiver.got[0]
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            standardwebhooks.Webhook(secret_for_receivers("other-secret")).verify(
                first_hook["body"], first_hook["headers"]
            )
        assert hooks[0]["report_summary"]["placeholder"] == 3 and hooks[0]["job_id"] == job_id
        assert hooks[0]["metadata"] == {"caller": "lifecycle"} and hooks[0]["type"] == "job.finished"
        assert hooks[0]["report_summary"]["text"][0].startswith("v_b: 3 line(s) 2, 4, 6 -> placeholder")

        # When the video is back and the job is retried
        stack.cdn.set_gone("v_b", False)
        stack.cdn.reset_counters()
        stack.cdn.slow_down("/hls/v_b/", 1.5)  # holds the attempt in EXTRACTING while it is asked again
        retried = api.post(f"/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["attempt"] == 2 and retried.json()["retried_slots"] == [1, 3, 5]
        # (While the attempt is still PENDING, asking again re-sends its plan: 202, the same attempt.
        # Once it is planned, a second retry is refused.)
        again = api.post(f"/jobs/{job_id}/retry")
        if again.status_code == 202:
            assert again.json()["attempt"] == 2, again.text
        deadline = time.monotonic() + 30
        while api.get(f"/jobs/{job_id}").json()["status"] == "PENDING" and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = api.post(f"/jobs/{job_id}/retry")
        assert busy.status_code == 409 and "still" in busy.json()["error"]["message"], busy.text
        stack.cdn.reset_faults()
        second = poll_final(api, job_id)

        # Then only the gaps were rendered again, the good clips were reused, and the job is whole
        assert second["status"] == "COMPLETED" and second["attempt"] == 2 and second["progress"] == 100
        report_2 = api.get(f"/jobs/{job_id}/report").json()
        assert [s["outcome"] for s in report_2["slots"]] == ["ok"] * 6
        segments = {r.path.split("/")[2] for r in stack.cdn.requests if r.path.endswith(".ts")}
        assert segments == {"v_b"}  # v_a's playlist is read again, none of its segments
        final = stack.tmp / "output" / job_id / "final.mp4"
        assert count_frames(final) == report_2["output"]["expected_frames"] == 180
        earlier = second["previous_attempts"]
        assert [(a["attempt"], a["status"]) for a in earlier] == [(1, "COMPLETED_WITH_GAPS")]
        kept = json.loads(Path(earlier[0]["report_path"]).read_text())
        assert kept["summary"]["placeholder"] == 3 and Path(earlier[0]["output_path"]).is_file()

        # And the new final state was called back once more, under a new delivery id
        hooks = receiver.wait_for(3)
        assert [(h["status"], h["attempt"]) for h in hooks[2:]] == [("COMPLETED", 2)]
        assert len({g["headers"][DELIVERY_HEADER] for g in receiver.got}) == 2
        time.sleep(1.0)  # the pump runs every 0.2 s: nothing is sent twice
        assert len(receiver.got) == 3

        # A completed job has nothing to retry; an unknown one is 404
        done = api.post(f"/jobs/{job_id}/retry")
        assert done.status_code == 409 and "nothing to retry" in done.json()["error"]["message"]
        assert api.post("/jobs/nope/retry").status_code == 404

        # Statistics and listings, over HTTP and on the command line
        stats = api.get("/stats").json()
        assert stats["jobs_by_status"]["COMPLETED"] == 1 and stats["success_rate"] == 1.0
        assert stats["clips"]["total"] == 6 and stats["placeholder_ratio"] == 0.0
        assert set(stats["queues"]) == {"plan", "clip", "fallback", "assemble"}
        assert stats["queues"]["clip"]["ready"] == 0 and stats["queues"]["clip"]["consumers"] >= 1
        cli_stats = json.loads(stack.cli("stats", "--json", "--window", "1h").stdout.splitlines()[-1])
        assert cli_stats["jobs_by_status"] == stats["jobs_by_status"]
        listed = json.loads(stack.cli("jobs", "--json", "--status", "completed").stdout.splitlines()[-1])
        assert [j["job_id"] for j in listed["jobs"]] == [job_id]

    # Retention: a running job is never touched; the finished one goes with its files and record
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    running_id = new_job_id("running")
    store.create_or_get(parse_request(dict(body, job_id=running_id)))
    time.sleep(1.1)
    dry = stack.cli("cleanup", "--older-than", "1s", "--dry-run")
    assert dry.returncode == 0 and job_id in dry.stdout and running_id not in dry.stdout
    assert (stack.tmp / "output" / job_id).exists()
    gone = stack.cli("cleanup", "--older-than", "1s")
    assert gone.returncode == 0 and "1 job(s)" in gone.stdout, gone.stdout + gone.stderr
    assert not (stack.tmp / "output" / job_id).exists() and not (stack.tmp / "work" / job_id).exists()
    assert stack.cli("status", job_id).returncode == 2
    assert store.get(running_id).status == "PENDING"
    bad = stack.cli("cleanup", "--older-than", "yesterday")
    assert bad.returncode == 2 and "--older-than" in bad.stderr
    assert stack.actor_errors() == []
