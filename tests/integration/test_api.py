"""The HTTP API through a real uvicorn on 127.0.0.1, with real workers, broker, Redis and ffmpeg."""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from pipeline.subprocesses import tied_to_caller

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
        preexec_fn=tied_to_caller(),
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


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "field", ...}} with its stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "field"} <= set(body["error"]), body
    assert body["error"]["code"] == code and body["error"]["message"], body
    return dict(body["error"])


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
    body["metadata"] = {"tenant": "t-7", "tags": ["歌", 1, None]}

    created = api.post("/jobs", json=body)
    assert created.status_code == 202 and created.json()["job_id"] == job_id
    assert created.headers["location"] == f"/jobs/{job_id}"
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
    assert job["clips"] == {
        "total": 4,
        "done": 4,
        "succeeded": 3,
        "fallback_local": 0,
        "placeholder": 1,
        "failed": 0,
    }
    assert job["metadata"] == body["metadata"] and job["schema_version"] == 1 and job["eta_s"] is None
    # Every timestamp is ISO 8601 in UTC with its zone, on POST and GET alike (SQLite returns naive ones)
    for stamp in (created.json()["created_at"], job["created_at"], job["updated_at"], job["finished_at"]):
        assert ISO_UTC.match(stamp), stamp
    report = api.get(f"/jobs/{job_id}/report").json()
    assert [s["outcome"] for s in report["slots"]] == ["ok", "ok", "ok", "placeholder"]
    assert report["summary"]["missing_footage"][0]["lines"][0]["line"] == 4
    assert api.get("/jobs", params={"status": "COMPLETED_WITH_GAPS"}).json()["jobs"][0]["job_id"] == job_id

    # Idempotency and conflicts
    again = api.post("/jobs", json=body)
    assert again.status_code == 200 and again.json()["job_id"] == job_id
    assert again.headers["location"] == f"/jobs/{job_id}"
    other = dict(body, lines=body["lines"][:2])
    error_of(api.post("/jobs", json=other), 409, "job_conflict")
    bad = error_of(api.post("/jobs", json=dict(body, job_id="../etc")), 422, "request_invalid")
    assert bad["field"] == "job_id" and bad["problems"][0]["field"] == "job_id"
    error_of(api.get("/jobs/nope"), 404, "job_not_found")
    error_of(api.get("/jobs/nope/report"), 404, "job_not_found")
    huge = dict(body, job_id=new_job_id("huge"), lines=body["lines"] * 3000)
    error_of(api.post("/jobs", json=huge), 413, "body_too_large")

    # Auth: everything but health and metrics needs the token
    anonymous = httpx.Client(base_url=str(api.base_url))
    error_of(anonymous.get(f"/jobs/{job_id}"), 401, "unauthorized")
    assert anonymous.post("/jobs", json=body).status_code == 401
    wrong = anonymous.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/metrics").status_code == 200
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200 and ready.json()["down"] == []
    assert "/jobs/{job_id}/report" in anonymous.get("/openapi.json").json()["paths"]


def test_every_error_has_one_shape_and_a_stable_code(stack: Stack, api: httpx.Client) -> None:
    # Every problem of a request, each with its field path, FastAPI's own validation errors included
    body = build_request(
        new_job_id("bad"), stack.cdn, [("v_a", 0, 900, True), ("a/b", 0, 900, True)], line_ms=lambda i: 1000
    )
    body["lines"][0]["end_ms"] = 0
    body["colour"] = "red"
    bad = error_of(api.post("/jobs", json=body), 422, "request_invalid")
    assert [p["field"] for p in bad["problems"]] == ["lines[0].end_ms", "lines[1].clip.video_id", "colour"]
    assert bad["field"] == "lines[0].end_ms" and "more problem" not in bad["message"]
    not_json = error_of(api.post("/jobs", content=b"{nope"), 422, "request_invalid")
    assert not_json["field"] == "(body)" and "not valid JSON" in not_json["message"]
    assert error_of(api.post("/jobs", json=[1, 2]), 422, "request_invalid")["field"] == "(body)"
    # JSON the reader cannot hold (nested too deep, an integer of 5000 digits) is refused the same way,
    # and NaN, Infinity and 1e400 are not JSON numbers (they were kept in metadata and echoed as null)
    line = json.dumps(body["lines"][1] | {"clip": body["lines"][1]["clip"] | {"video_id": "v_a"}})
    for raw in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"lines": [{"start_ms": ' + b"9" * 5000 + b"}]}",
        *(b'{"lines": [' + line.encode() + b'], "metadata": {"x": ' + v + b"}}" for v in (b"NaN", b"1e400")),
    ):
        refused = error_of(api.post("/jobs", content=raw), 422, "request_invalid")
        assert refused["field"] == "(body)" and "not valid JSON" in refused["message"], refused
    # a key given twice (Python's reader kept the last value): which one was meant is unknown
    twice = b'{"lines": [' + line.encode() + b'], "output": {"fps": 25, "fps": 30}}'
    refused = error_of(api.post("/jobs", content=twice), 422, "request_invalid")
    assert refused["field"] == "(body)" and "the key 'fps' is given twice" in refused["message"], refused
    query = error_of(api.get("/jobs", params={"limit": 0, "status": "DONE"}), 422, "request_invalid")
    assert sorted(p["field"] for p in query["problems"]) == ["limit", "status"]
    error_of(api.get("/no/such/path"), 404, "not_found")
    error_of(api.delete("/jobs"), 405, "method_not_allowed")
    # No report yet, not retryable while it runs: each its own code
    pending = build_request(new_job_id("pending"), stack.cdn, [("v_a", 0, 900, True)], line_ms=lambda i: 1000)
    assert api.post("/jobs", json=pending).status_code == 202  # no worker: it stays PENDING
    error_of(api.get(f"/jobs/{pending['job_id']}/report"), 404, "report_not_ready")
    error_of(api.post(f"/jobs/{pending['job_id']}/retry"), 409, "job_not_retryable")
    assert api.post(f"/jobs/{pending['job_id']}/cancel").json()["status"] == "CANCELLED"
    error_of(api.post(f"/jobs/{pending['job_id']}/cancel"), 409, "job_finished")


def test_a_service_down_is_a_503_in_the_error_shape(stack: Stack) -> None:
    # Given an API whose broker and Redis cannot be reached
    down = {"CLIPLINE_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F", "CLIPLINE_REDIS_URL": "redis://127.0.0.1:1/0"}
    with running_api(stack, **down) as api:
        body = build_request(new_job_id("down"), stack.cdn, [("v_a", 0, 900, True)], line_ms=lambda i: 1000)
        # When a request is submitted, then it is recorded but the caller learns the broker is down
        error_of(api.post("/jobs", json=body), 503, "unavailable")
        # The job's status still answers, with no live counts (Redis is down too)
        job = api.get(f"/jobs/{body['job_id']}").json()
        assert job["status"] == "PENDING" and job["clips"] is None


def test_jobs_filter_by_mix_request_id_and_status(stack: Stack, api: httpx.Client) -> None:
    ids = [new_job_id("filter") for _ in range(3)]
    for i, job_id in enumerate(ids):
        body = build_request(job_id, stack.cdn, [("v_a", 0, 900, True)], line_ms=lambda i: 1000)
        body["mix_request_id"] = "req-shared" if i < 2 else "req-other"
        assert api.post("/jobs", json=body).status_code == 202
    api.post(f"/jobs/{ids[0]}/cancel")
    shared = api.get("/jobs", params={"mix_request_id": "req-shared"}).json()["jobs"]
    assert sorted(j["job_id"] for j in shared) == sorted(ids[:2])
    both = api.get("/jobs", params={"mix_request_id": "req-shared", "status": "CANCELLED"}).json()
    assert [j["job_id"] for j in both["jobs"]] == [ids[0]] and both["limit"] == 50
    assert api.get("/jobs", params={"mix_request_id": "req-none"}).json()["jobs"] == []


def test_live_clip_counts_and_eta_while_the_job_runs(stack: Stack, api: httpx.Client) -> None:
    # Given a job of 12 clips that takes a while (a slow CDN, two clips at a time)
    stack.cdn.latency_ms = 150
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("live")
    picks = [("v_a", 500 * i, 500 * i + 1500, True) for i in range(11)] + [("v_gone", 0, 900, False)]
    body = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1500, audio=False)
    try:
        assert api.post("/jobs", json=body).status_code == 202
        running: list[dict[str, Any]] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            job = api.get(f"/jobs/{job_id}").json()
            if job["status"] in ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED"):
                break
            if job["status"] == "EXTRACTING":
                running.append(job)
            time.sleep(0.05)
    finally:
        stack.cdn.latency_ms = 0
    # Then, while it ran, the counts came from Redis: they rose, and always added up
    assert running, "the job was never seen EXTRACTING"
    for seen in running:
        clips = seen["clips"]
        assert clips["total"] == 12 and seen["clip_stats"] is None
        by_outcome = ("succeeded", "fallback_local", "placeholder", "failed")
        assert clips["done"] == sum(clips[k] for k in by_outcome)
        # eta_s is there once a few clips are done, and only then
        assert (seen["eta_s"] is not None) == (3 <= clips["done"] < 12), seen
        assert seen["eta_s"] is None or seen["eta_s"] >= 0
    done = [s["clips"]["done"] for s in running]
    assert done == sorted(done) and done[-1] > done[0]
    assert any(s["eta_s"] is not None for s in running), "no poll saw 3 or more clips done while extracting"
    assert job["clips"]["done"] == 12 and job["clips"]["placeholder"] == 1


#: Redis, the database and the store unusable as well; the database URL holds a password.
DOWN_TOO = {
    "CLIPLINE_REDIS_URL": "redis://127.0.0.1:1/0",
    "CLIPLINE_DATABASE_URL": "postgresql+psycopg://clipline:hunter2@127.0.0.1:1/clipline",
    "CLIPLINE_STORAGE_URL": "file:///proc/clipline-nope",
}


def test_readyz_names_what_is_down(stack: Stack, api: httpx.Client) -> None:
    port = free_port()
    env = dict(
        stack.env, CLIPLINE_BROKER_URL="amqp://guest:guest@127.0.0.1:1/%2F", CLIPLINE_FFMPEG="/nope/ffmpeg"
    )
    env.update(DOWN_TOO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=tied_to_caller(),
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
        assert sorted(res.json()["down"]) == ["broker", "database", "ffmpeg", "redis", "storage"]
        # Each named, none explained: the answer is open to anyone, exception text is for the log
        assert set(res.json()["checks"].values()) == {"down"}
        for secret in ("hunter2", "127.0.0.1", "nope", "Error", "/proc"):
            assert secret not in res.text, res.text
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
    assert again.status_code == 409 and "already ended" in again.json()["error"]["message"]
    assert stack.cli("cancel", job_id).returncode == 2


# -- hostile requests: bodies, tokens, what /readyz tells ---------------------------------------------


def _raw(
    port: int, head: bytes, chunks: tuple[bytes, ...] = (), wait_s: float = 15
) -> tuple[int, dict[str, str], bytes, int]:
    """One request over a plain socket: the head, then ``chunks`` one by one for as long as no answer
    has come. Returns (status, headers, body, bytes of body sent before the answer came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(head)
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0.02)[0]:
                break  # the server answered: stop sending, as a client that reads its answers would
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except (TimeoutError, ConnectionResetError):
            pass
    assert answer, "no answer"
    top, _, body = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body, sent


def _chunks(count: int, size: int) -> tuple[bytes, ...]:
    return tuple(f"{size:x}\r\n".encode() + b"x" * size + b"\r\n" for _ in range(count))


def _port(api: httpx.Client) -> int:
    port = api.base_url.port
    assert port is not None
    return port


def test_a_chunked_body_over_the_limit_is_refused_as_it_streams(api: httpx.Client) -> None:
    # Given an API whose body limit is 200,000 bytes (running_api)
    head = (
        b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    # When a body without Content-Length streams on past the limit (2 MB offered, never ended)
    status, headers, body, sent = _raw(_port(api), head, _chunks(100, 20_000))
    # Then the answer is 413 in the error shape, given before the body ended, and the connection closes
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large", body
    assert sent < 2_000_000 and headers.get("connection") == "close"


def test_credentials_are_checked_before_the_body_is_read(api: httpx.Client) -> None:
    port = _port(api)
    # A huge declared body without a token: 401 (not 413: nothing is learnt before authenticating)
    head = b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000000\r\n\r\n"
    status, headers, body, _ = _raw(port, head)
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized", body
    assert headers.get("www-authenticate") == "Bearer"
    # A page form streamed without a login: sent to the login page before its body is read
    head = (
        b"POST /ui/submit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, headers, _, sent = _raw(port, head, _chunks(5, 1000))
    assert status == 303 and headers["location"].startswith("/login?next=%2Fui%2Fsubmit"), headers
    assert sent < 5000
    # With the token the same route reads its body as before
    assert api.get("/jobs").status_code == 200


def test_a_token_or_cookie_with_any_bytes_is_a_401_not_a_500(api: httpx.Client) -> None:
    url = str(api.base_url.join("/jobs"))
    for headers in (
        {b"Authorization": "Bearer tökén".encode()},
        {b"Authorization": b"Bearer \xff\xfe"},
        {b"Cookie": b"clipline_session=v1.\xb2.abc"},  # "²": a digit to str.isdigit, not to int()
        {b"Cookie": "clipline_session=v1.١٢٣.abc".encode()},
    ):
        for method in ("GET", "POST"):
            res = httpx.request(method, url, headers=headers, content=b"{}", timeout=30)
            error_of(res, 401, "unauthorized")
