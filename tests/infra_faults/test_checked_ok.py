"""Checked and found correct (evidence, these pass):

- Redis that accepts connections and never answers: redis-py 8 gives every client a 5 s socket timeout
  by default, so ``clipline status --json`` answers from the record, ``submit --wait --timeout 3`` exits
  3/4, ``clipline worker`` exits 3 naming Redis, and readiness says ``redis: down``, each within ~5 s.
- RabbitMQ closing every connection of the vhost mid-clip: the job still COMPLETED whole, once
  (``faultkit.check_job``): Dramatiq reconnects its consumers and publishes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Stack, build_request, new_job_id
from tests.integration.faultkit import (
    FINAL_CLIP,
    check_job,
    clip_events,
    init_db,
    slow_ffmpeg,
    small_request,
    submit,
    vhost_of,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

BOUND_S = 20  # generous: a Redis call that fails should fail within a few seconds


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts every connection, reads what it gets, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.setblocking(False)
            self.conns.append(c)
            self.accepted += 1

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def hung_redis() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def _record_job(stack: Stack) -> str:
    """A job record (EXTRACTING) in the stack's SQLite database, as if workers were rendering it."""
    from pipeline.models import JobStatus, parse_request
    from pipeline.store import JobStore

    job_id = new_job_id("hung")
    req = build_request(job_id, stack.cdn, [("v_a", 0, 1000, True)] * 3, line_ms=lambda i: 1000)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    store.create_or_get(parse_request(req))
    store.advance(job_id, status=JobStatus.EXTRACTING, progress=10)
    return job_id


def _run(stack: Stack, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess[str] | None, float]:
    """Run ``clipline ARGS``; (result, seconds) or (None, seconds) when it had to be killed at ``timeout``."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", *args],
        env=stack.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        return None, time.monotonic() - started
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.monotonic() - started


def test_status_answers_from_the_database_when_redis_hangs(stack: Stack, hung_redis: BlackHole) -> None:
    """``clipline status JOB --json`` reads the record from SQL and the live clip counts from Redis; a
    Redis *error* is handled (``pipeline/jobs.py::_live`` logs ``status.live_counts_unavailable`` and
    answers without counts). A Redis that never answers blocks that read forever: the command hangs.

    Right: every Redis call has a bound (``socket_timeout``/``socket_connect_timeout``), so status answers
    from the record within seconds (exit 0, the job's JSON), as it does when Redis is refused."""
    job_id = _record_job(stack)
    stack.env["CLIPLINE_REDIS_URL"] = hung_redis.url
    res, took = _run(stack, "status", job_id, "--json", timeout=BOUND_S)
    assert res is not None, f"`clipline status --json` still running after {took:.0f} s with Redis hung"
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["job_id"] == job_id


def test_submit_wait_timeout_is_honoured_when_redis_hangs(stack: Stack, hung_redis: BlackHole) -> None:
    """README: ``clipline submit request.json --wait --timeout 600  # stop waiting after 600 s (exit 4; the
    job goes on)``. With Redis hung, ``--wait --timeout 3`` never returns: the wait loop
    (``clipline/progress.py::wait_for``) reads the clip counts from Redis (``_clips``) before checking its
    deadline, and that read blocks forever (no socket timeout).

    Right: the wait ends at its timeout (exit 4) or with exit 3 naming Redis, within seconds."""
    from tests.integration.faultkit import init_db

    init_db(stack)
    job_id = new_job_id("hungw")
    req = build_request(job_id, stack.cdn, [("v_a", 0, 1000, True)] * 3, line_ms=lambda i: 1000)
    path = stack.tmp / "req.json"
    path.write_text(json.dumps(req))
    stack.env["CLIPLINE_REDIS_URL"] = hung_redis.url
    res, took = _run(stack, "submit", str(path), "--wait", "--timeout", "3", timeout=BOUND_S)
    assert res is not None, f"`submit --wait --timeout 3` still running after {took:.0f} s with Redis hung"
    assert res.returncode in (3, 4), (res.returncode, res.stderr[-2000:])


def test_worker_refuses_to_start_when_redis_hangs(stack: Stack, hung_redis: BlackHole) -> None:
    """README: workers refuse to start, with one line naming the problem, when the database, Redis or the
    broker cannot be reached (exit 3). With a Redis that accepts the connection and never answers,
    ``clipline worker`` blocks in its preflight ``ctx.redis.ping()`` (``clipline/cli.py::_preflight``) for
    ever: no exit, no message, no consumer.

    Right: the ping has a timeout; the worker exits 3 naming Redis within seconds."""
    from tests.integration.faultkit import init_db

    init_db(stack)
    stack.env["CLIPLINE_REDIS_URL"] = hung_redis.url
    res, took = _run(stack, "worker", "--stage", "plan", timeout=BOUND_S)
    assert res is not None, f"`clipline worker` neither started nor exited in {took:.0f} s with Redis hung"
    assert res.returncode == 3, (res.returncode, res.stderr[-2000:])
    assert "redis" in res.stderr.lower()


def test_readiness_says_redis_down_when_redis_hangs(stack: Stack, hung_redis: BlackHole) -> None:
    """``/readyz`` (``clipline/health.py::readiness``) answers "down" per check that fails. A hung Redis makes
    its ``ping()`` block forever, so the readiness answer never comes (a probe sees a timeout, and the API
    thread stays blocked for good).

    Right: ``{"redis": "down", ...}`` within seconds."""
    from clipline.health import readiness
    from pipeline.context import Context
    from pipeline.settings import Settings
    from tests.integration.faultkit import init_db

    init_db(stack)
    env = {**stack.env, "CLIPLINE_REDIS_URL": hung_redis.url}
    code = (
        "import json, sys; from clipline.health import readiness; from pipeline.context import Context;"
        "from pipeline.settings import get_settings; print(json.dumps(readiness(Context(get_settings()))))"
    )
    del readiness, Context, Settings
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        took = time.monotonic() - started
        raise AssertionError(f"readiness gave no answer in {took:.0f} s with Redis hung") from None
    assert json.loads(out.strip().splitlines()[-1])["redis"] == "down", err[-2000:]


# -- RabbitMQ connections closed by the server --


def _close_all(vhost: str) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "audit-h: connections closed mid-job"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_connections_closed_by_the_server_mid_clip_the_job_still_completes_once(stack: Stack) -> None:
    """6-line job, one worker (all stages, 2 clip threads), ffmpeg held 3 s; once two clips have started the
    server closes every connection of the vhost. Expected: COMPLETED within the bound, every slot once,
    one assembly, queues drained, no ffmpeg left (``faultkit.check_job``)."""
    hold = stack.tmp / "hold-ffmpeg"
    hold.touch()
    stack.env["CLIPLINE_RECONCILE_AFTER_S"] = "3600"
    real = stack.env.get("CLIPLINE_FFMPEG", "ffmpeg")
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, 3.0, only_while=hold)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    stack.env["CLIPLINE_FFMPEG"] = real
    job_id = new_job_id("rconn")
    request = small_request(stack, job_id, 6)
    submit(stack, request)
    wait_for("two clips started", lambda: len(clip_events(stack, job_id, ("started",))) >= 2, timeout=90)
    assert sum(clip_events(stack, job_id, FINAL_CLIP).values()) < 4, "the fault came too late"
    _close_all(vhost_of(stack.env["CLIPLINE_BROKER_URL"]))
    hold.unlink()
    result = wait_final(stack, job_id, timeout=50)
    check_job(stack, request, result)
