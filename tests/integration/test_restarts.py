"""RabbitMQ restarted mid-job, Redis restarted (state lost) mid-job: the job still ends whole, once.

Each test runs its own RabbitMQ node or redis-server (tests.integration.private),
so restarting it disturbs nothing else on the machine.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from .conftest import Stack, new_job_id
from .faultkit import (
    FINAL_CLIP,
    Outcome,
    check_job,
    clip_events,
    init_db,
    slow_ffmpeg,
    small_request,
    submit,
    wait_final,
    wait_for,
)
from .private import PrivateRabbit, PrivateRedis, private_rabbit, private_redis
from .test_kills import FAST_RECONCILE

pytestmark = pytest.mark.integration


@dataclass
class RestartRun:
    outcome: Outcome
    restart_point: str
    recovery_s: float  # from the start of the restart to the job's final status
    # Where the recovery time went, in seconds from the start of the restart (see phases()).
    phases: dict[str, float] = field(default_factory=dict)


def _ts(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


def phases(stack: Stack, job_id: str, t0: float, down: float, back: float) -> dict[str, float]:
    """The recovery broken into what the workers logged after the restart began (wall clock t0).

    server_down: the server had stopped; server_back: it answered again; first_clip_after:
    the first clip event logged after that; last_clip_final: the job's last clip outcome;
    assemble_started; finished.
    """
    clips = [e for e in stack.events("twelvelabs.video_clip") if e.get("job_id") == job_id]
    after = sorted(_ts(e) for e in clips if _ts(e) > back)
    finals = sorted(_ts(e) for e in clips if e.get("clip_status") in FINAL_CLIP)
    out = {"server_down": down - t0, "server_back": back - t0}
    if after:
        out["first_clip_after"] = after[0] - t0
    if finals:
        out["last_clip_final"] = finals[-1] - t0
    for name, event in (("assemble_started", "assemble.started"), ("finished", "job.finished")):
        stamps = sorted(_ts(e) for e in stack.events(event) if e.get("job_id") == job_id)
        if stamps:
            out[name] = stamps[-1] - t0
    return {k: round(v, 2) for k, v in out.items()}


@pytest.fixture
def rabbit(stack: Stack) -> Iterator[PrivateRabbit]:
    with private_rabbit(stack.tmp / "rabbit") as node:
        stack.env["CLIPLINE_BROKER_URL"] = node.url
        yield node
        stack.stop_workers()  # before the node goes: workers must not outlive their broker


@pytest.fixture
def private_redis_server(stack: Stack) -> Iterator[PrivateRedis]:
    with private_redis(stack.tmp / "redis") as server:
        stack.env["CLIPLINE_REDIS_URL"] = server.url
        yield server
        stack.stop_workers()


def run_with_restart(
    stack: Stack, restart: PrivateRabbit | PrivateRedis, rng: random.Random, lines: int = 10
) -> RestartRun:
    stack.env.update(FAST_RECONCILE)
    init_db(stack)
    # Clips share their segments, so the job's last clips may be only encodes of ~0.1 s: while a
    # RabbitMQ node stops (~1.5 s), an ffmpeg that starts waits 3 s, so the job cannot end before
    # the node is down (at most 2 of the 4 or more clips left are past that point).
    hold = stack.tmp / "hold-ffmpeg"
    real = stack.env.get("CLIPLINE_FFMPEG", "ffmpeg")
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, 3.0, only_while=hold)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    stack.env["CLIPLINE_FFMPEG"] = real
    stack.cdn.latency_ms = 120
    job_id = new_job_id("restart")
    request = small_request(stack, job_id, lines)
    after = rng.randint(1, lines - 4)
    try:
        submit(stack, request)
        wait_for(
            f"{after} clips done",
            lambda: sum(clip_events(stack, job_id, FINAL_CLIP).values()) >= after,
            timeout=180,
        )
        if isinstance(restart, PrivateRabbit):  # a redis-server dies at once (SIGKILL): no need
            hold.touch()
        started, t0 = time.monotonic(), time.time()
        done_at = sum(clip_events(stack, job_id, FINAL_CLIP).values())
        assert done_at < lines, "the job's clips all finished before the restart: no fault was injected"
        restart.stop()
        down = time.time()
        hold.unlink(missing_ok=True)
        restart.start()
        back = time.time()
        result = wait_final(stack, job_id, timeout=240)
        recovery = time.monotonic() - started
    finally:
        stack.cdn.latency_ms = 0
        hold.unlink(missing_ok=True)
    if isinstance(restart, PrivateRabbit):
        outcome = check_job(stack, request, result, ctl=restart.ctl)
    else:
        outcome = check_job(stack, request, result)
    steps = phases(stack, job_id, t0, down, back)
    assert steps.get("finished", 0) > steps["server_down"], f"job ended before the server was down: {steps}"
    return RestartRun(outcome, f"after {done_at}/{lines} clips", recovery, steps)


def test_rabbitmq_restarted_mid_job_loses_nothing(stack: Stack, rabbit: PrivateRabbit) -> None:
    run = run_with_restart(stack, rabbit, random.Random())
    print(f"\nRabbitMQ restarted {run.restart_point}: {run.recovery_s:.1f} s", run.phases, run.outcome)
    assert run.outcome.clips_lost == 0 and run.outcome.assemblies == 1


def test_redis_restarted_mid_job_state_lost_the_job_still_completes_once(
    stack: Stack, private_redis_server: PrivateRedis
) -> None:
    run = run_with_restart(stack, private_redis_server, random.Random())
    print(f"\nRedis restarted {run.restart_point}: {run.recovery_s:.1f} s", run.phases, run.outcome)
    assert run.outcome.clips_lost == 0 and run.outcome.assemblies == 1


def test_an_assembler_killed_then_redis_lost_leaves_no_temporary_file(
    stack: Stack, private_redis_server: PrivateRedis
) -> None:
    """Found by the chaos soak (bench/chaos.py, seed 8): an assembler SIGKILLed with its temporary
    final.mp4 written, then a Redis restart (its lock and heartbeat lost with it): the redelivered
    assembly took the free lock and completed the job, and the dead one's ``.final.*.tmp.mp4`` stayed in
    the output directory (only the reconciler's repair of a dead holder removed such files)."""
    from .faultkit import job_events, sigkill_worker

    stack.env.update(FAST_RECONCILE)
    init_db(stack)
    for stage in ("plan", "clip", "fallback"):
        stack.start_workers("--stage", stage, "--concurrency", "2", name=stage)
    # The assembler to be killed counts the frames of its temporary final.mp4 3 s late: the kill lands
    # with that file written and not yet renamed. Its replacement runs the real ffmpeg.
    real = stack.env.get("CLIPLINE_FFMPEG", "ffmpeg")
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, 3.0)
    doomed = stack.start_workers("--stage", "assemble", "--concurrency", "2", name="assemble")
    stack.env["CLIPLINE_FFMPEG"] = real
    job_id = new_job_id("asm-redis")
    request = small_request(stack, job_id, 4)
    submit(stack, request)
    out = stack.tmp / "output" / job_id
    wait_for("the temporary final.mp4", lambda: any(out.glob(".final.*.tmp*")), timeout=180, every=0.05)
    sigkill_worker(doomed)
    private_redis_server.restart()
    assert not job_events(stack, "job.finished", job_id), "the job ended before the kill: no fault injected"
    stack.start_workers("--stage", "assemble", "--concurrency", "2", name="assemble")
    result = wait_final(stack, job_id, timeout=180)
    assert result["status"] == "COMPLETED", result
    wait_for("no temporary file left", lambda: not any(out.glob(".*.tmp*")), timeout=15, every=0.2)
