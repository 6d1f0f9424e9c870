"""The HTTP API through a real uvicorn on 127.0.0.1, with real workers, broker, Redis and ffmpeg."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from .conftest import Stack, build_request, new_job_id
from .private import free_port

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"


@contextmanager
def running_api(stack: Stack, **env: str) -> Iterator[httpx.Client]:
    """`clipline api` on a free loopback port with the stack's environment; a client holding the token."""
    port = free_port()
    full = dict(stack.env, CLIPLINE_API_TOKEN=TOKEN, CLIPLINE_API_MAX_BODY_BYTES="200000", **env)
    log = open(stack.tmp / f"api-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "api", "--port", str(port)],
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with running_api(stack) as client:
        yield client


def test_submit_poll_report_and_errors(stack: Stack, api: httpx.Client) -> None:
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("api")
    body = build_request(
        job_id,
        stack.cdn,
        [("v_a", 1000 * i, 1000 * i + 900, True) for i in range(3)] + [("v_gone", 0, 900, False)],
        line_ms=lambda i: 1000,
        audio=False,
    )

    created = api.post("/jobs", json=body)
    assert created.status_code == 202 and created.json()["job_id"] == job_id
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        seen.append(job["progress"])
        if job["status"] in ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED"):
            break
        time.sleep(0.2)
    assert job["status"] == "COMPLETED_WITH_GAPS" and job["progress"] == 100
    assert seen == sorted(seen)  # progress never goes backwards
    assert job["clips"] == {"total": 4, "succeeded": 3, "fallback_local": 0, "placeholder": 1, "failed": 0}
    report = api.get(f"/jobs/{job_id}/report").json()
    assert [s["outcome"] for s in report["slots"]] == ["ok", "ok", "ok", "placeholder"]
    assert api.get("/jobs", params={"status": "COMPLETED_WITH_GAPS"}).json()["jobs"][0]["job_id"] == job_id

    # Idempotency and conflicts
    again = api.post("/jobs", json=body)
    assert again.status_code == 200 and again.json()["job_id"] == job_id
    other = dict(body, lines=body["lines"][:2])
    assert api.post("/jobs", json=other).status_code == 409
    bad = api.post("/jobs", json=dict(body, job_id="../etc"))
    assert bad.status_code == 422 and bad.json()["field"] == "job_id"
    assert api.get("/jobs/nope").status_code == 404
    assert api.get("/jobs/nope/report").status_code == 404
    huge = dict(body, job_id=new_job_id("huge"), lines=body["lines"] * 3000)
    assert api.post("/jobs", json=huge).status_code == 413

    # Auth: everything but health and metrics needs the token
    anonymous = httpx.Client(base_url=str(api.base_url))
    assert anonymous.get(f"/jobs/{job_id}").status_code == 401
    assert anonymous.post("/jobs", json=body).status_code == 401
    wrong = anonymous.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/metrics").status_code == 200
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200 and ready.json()["down"] == []
    assert "/jobs/{job_id}/report" in anonymous.get("/openapi.json").json()["paths"]


def test_readyz_names_what_is_down(stack: Stack, api: httpx.Client) -> None:
    port = free_port()
    env = dict(
        stack.env, CLIPLINE_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F", CLIPLINE_FFMPEG="/nope/ffmpeg"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, res = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            try:
                res = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert res is not None and res.status_code == 503
        assert sorted(res.json()["down"]) == ["broker", "ffmpeg"]
    finally:
        proc.terminate()
        proc.wait(10)


def _ffmpeg_running_for(job_id: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, __import__("os").listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ffmpeg" in cmd and job_id in cmd:
            found.append(cmd)
    return found


def test_cancel_mid_job_stops_everything(stack: Stack, api: httpx.Client) -> None:
    stack.cdn.latency_ms = 300
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("cancel")
    body = build_request(
        job_id,
        stack.cdn,
        [("v_a", 500 * i, 500 * i + 1500, True) for i in range(16)],
        line_ms=lambda i: 1500,
        audio=False,
    )
    try:
        assert api.post("/jobs", json=body).status_code == 202
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{job_id}").json()["progress"] < 15 and time.monotonic() < deadline:
            time.sleep(0.1)
        cancelled = api.post(f"/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
        # Nothing keeps running for it, nothing is assembled, its temporary files go away
        deadline = time.monotonic() + 20
        work = stack.tmp / "work" / job_id
        while (work.exists() or _ffmpeg_running_for(job_id)) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stack.cdn.latency_ms = 0
    assert not work.exists() and _ffmpeg_running_for(job_id) == []
    job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "CANCELLED" and job["output_path"] is None
    assert not (stack.tmp / "output" / job_id / "final.mp4").exists()
    assert not [e for e in stack.events("assemble.started") if e["job_id"] == job_id]
    again = api.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]
    assert stack.cli("cancel", job_id).returncode == 2
