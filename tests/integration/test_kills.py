"""Hard kills: a clip worker SIGKILLed mid-job and an assembler SIGKILLed mid-assembly, each started again.

RabbitMQ redelivers the dead worker's unacknowledged messages to the new one;
the stages are idempotent and the reconciler repairs what the dead process held.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from .conftest import ROOT, Stack, new_job_id
from .faultkit import (
    FINAL_CLIP,
    Outcome,
    check_job,
    clip_events,
    ffmpeg_pids,
    init_db,
    job_events,
    sigkill_worker,
    slow_ffmpeg,
    small_request,
    submit,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

#: Repairs within seconds instead of the production 2 minutes.
FAST_RECONCILE = {
    "CLIPLINE_RECONCILE_INTERVAL_S": "1",
    "CLIPLINE_RECONCILE_AFTER_S": "3",
}


@dataclass
class KillRun:
    outcome: Outcome
    kill_point: str
    recovery_s: float  # from the kill to the job's final status
    ffmpeg_after_kill: int  # ffmpeg processes of the dead worker still alive just after the kill


def start_stage(stack: Stack, stage: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
    return stack.start_workers("--stage", stage, "--concurrency", str(concurrency), name=stage)


def start_pipeline(stack: Stack) -> dict[str, subprocess.Popen[bytes]]:
    stack.env.update(FAST_RECONCILE)
    init_db(stack)
    return {stage: start_stage(stack, stage) for stage in ("plan", "clip", "fallback", "assemble")}


def kill_clip_worker_mid_job(stack: Stack, rng: random.Random, lines: int = 10) -> KillRun:
    # Each clip fetches its own segments, each a moment late, so the kill lands with clips in flight (with
    # segments prefetched while others encode, ten clips took 1.7 s and the test's look at the logs
    # missed the moment a clip was running)
    stack.env["CLIPLINE_PREFETCH_SLOTS"] = "0"
    workers = start_pipeline(stack)
    stack.cdn.latency_ms = 300
    job_id = new_job_id("kill-clip")
    request = small_request(stack, job_id, lines)
    after = rng.randint(0, lines - 3)  # finished clips before the kill: a random point in the job
    try:
        submit(stack, request)

        def in_flight() -> bool:
            done = sum(clip_events(stack, job_id, FINAL_CLIP).values())
            started = sum(clip_events(stack, job_id, ("started",)).values())
            return done >= after and started > done

        wait_for("a clip in flight", in_flight, timeout=120, every=0.02)
        done_at_kill = sum(clip_events(stack, job_id, FINAL_CLIP).values())
        killed_at = time.monotonic()
        orphans = sigkill_worker(workers["clip"])
        assert done_at_kill < lines, "the job finished before the kill: no fault was injected"
        start_stage(stack, "clip")
        result = wait_final(stack, job_id, timeout=240)
        recovery = time.monotonic() - killed_at
    finally:
        stack.cdn.latency_ms = 0
    outcome = check_job(stack, request, result)
    return KillRun(outcome, f"after {done_at_kill}/{lines} clips", recovery, len(orphans))


#: Each ffmpeg/ffprobe of the assembler that is killed starts this late (see faultkit.slow_ffmpeg):
#: an assembly of 10 small clips takes ~0.1 s here, a real 60-line one seconds.
SLOW_START_S = 1.0


def kill_assembler_mid_assembly(stack: Stack, rng: random.Random, lines: int = 10) -> KillRun:
    stack.env.update(FAST_RECONCILE)
    init_db(stack)
    workers = {stage: start_stage(stack, stage) for stage in ("plan", "clip", "fallback")}
    # The assembler to be killed runs a slow ffmpeg: its concat and its frame count each start
    # SLOW_START_S late, so the kill lands before the concat, during it, or with the temporary
    # final.mp4 written and not yet renamed. Its replacement runs the real ffmpeg.
    real = stack.env.get("CLIPLINE_FFMPEG", "ffmpeg")
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, SLOW_START_S)
    try:
        workers["assemble"] = start_stage(stack, "assemble")
    finally:
        stack.env["CLIPLINE_FFMPEG"] = real
    job_id = new_job_id("kill-asm")
    request = small_request(stack, job_id, lines)
    submit(stack, request)
    wait_for(
        "assembly to start",
        lambda: bool(job_events(stack, "assemble.started", job_id)),
        timeout=180,
        every=0.02,
    )
    delay = rng.uniform(0, 1.9 * SLOW_START_S)
    time.sleep(delay)
    killed_at = time.monotonic()
    orphans = sigkill_worker(workers["assemble"])
    assert not job_events(stack, "job.finished", job_id), "assembly ended before the kill: no fault injected"
    start_stage(stack, "assemble")
    result = wait_final(stack, job_id, timeout=240)
    recovery = time.monotonic() - killed_at
    outcome = check_job(stack, request, result)
    assert outcome.assembly_starts >= 2  # the killed one, then the one that finished the job
    return KillRun(outcome, f"{delay * 1000:.0f} ms into assembly", recovery, len(orphans))


def test_a_clip_worker_sigkilled_mid_job_is_replaced_and_the_job_completes(stack: Stack) -> None:
    run = kill_clip_worker_mid_job(stack, random.Random())
    print(f"\nclip worker SIGKILLed: {run}")
    assert run.outcome.clips_lost == 0 and run.outcome.assemblies == 1
    assert run.ffmpeg_after_kill == 0  # the dead worker's ffmpeg died with it


def test_the_assembler_sigkilled_mid_assembly_is_replaced_and_assembles_once(stack: Stack) -> None:
    run = kill_assembler_mid_assembly(stack, random.Random())
    print(f"\nassembler SIGKILLed: {run}")
    assert run.outcome.assemblies == 1
    assert run.ffmpeg_after_kill == 0


def test_a_lock_held_by_a_sigkilled_process_frees_itself_within_its_lease(redis_url: str) -> None:
    import sys

    from pipeline import leases

    key = f"clipline:test:lease:{new_job_id()}"
    code = (
        "import sys, time, redis; from pipeline import leases; "
        f"r = redis.Redis.from_url({redis_url!r}); "
        f"cm = leases.held(r, {key!r}, wait_s=5, lease_s=2); cm.__enter__(); print('held', flush=True); "
        "time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = redis.Redis.from_url(redis_url)
        time.sleep(3)  # longer than the lease: only the renewals keep it
        with pytest.raises(redis.exceptions.LockError):
            with leases.held(r, key, wait_s=0.5):
                pass
    finally:
        holder.kill()
        holder.wait(10)
    with leases.held(r, key, wait_s=10):  # freed by the lease, long before the holder's 60 s
        assert r.exists(key)


def test_the_reconciler_frees_the_lock_of_a_dead_assembler_only(stack: Stack) -> None:
    from pipeline import heartbeat, keys, planning, reconcile
    from pipeline.models import ClipOutcome, ClipRecord, JobStatus

    from .test_stages import make_ctx

    ctx = make_ctx(stack)
    job_id = new_job_id("deadasm")
    planning.plan(ctx, small_request(stack, job_id, 2, audio=False))
    for i in range(2):  # every slot has its outcome: the job reached assembly
        ctx.completion.record(job_id, i, 2, ClipRecord(i, ClipOutcome.PLACEHOLDER).to_json())
    ctx.store.advance(job_id, status=JobStatus.ASSEMBLING, progress=90)
    lock = keys.job_lock(job_id, "assemble")
    ctx.redis.set(lock, "token-of-a-live-assembler", ex=600)
    out = ctx.settings.output_dir / job_id
    out.mkdir(parents=True)
    (out / ".final.123.456.tmp.mp4").write_bytes(b"half a video")
    sent: list[tuple[object, ...]] = []

    # While its assembler beats, the job is left alone
    stop = threading.Event()
    beats = threading.Thread(target=lambda: _beat_until(ctx.redis, job_id, stop))
    beats.start()
    try:
        time.sleep(0.2)
        assert reconcile.sweep(ctx, lambda *a, **_: sent.append(a), stale_s=0) == []
        assert ctx.redis.exists(lock) and sent == []
    finally:
        stop.set()
        beats.join()

    # Once it stops beating (SIGKILL: its last mark is left behind, expired), its lock is freed, its
    # temporary file removed, assembly re-sent
    ctx.redis.hset(keys.job_holders(job_id, "assemble"), "sigkilled", str(int(time.time() * 1000) - 1))
    assert not heartbeat.alive(ctx.redis, job_id, "assemble")
    repairs = reconcile.sweep(ctx, lambda *a, **_: sent.append(a), stale_s=0)
    assert [r.action for r in repairs] == ["assembly re-sent"] and "dead" in repairs[0].detail
    assert not ctx.redis.exists(lock) and sent == [("assemble", job_id, ctx.store.get(job_id).trace_id)]
    assert list(out.iterdir()) == []


def _beat_until(r: redis.Redis, job_id: str, stop: threading.Event) -> None:
    from pipeline import heartbeat

    with heartbeat.beating(r, job_id, "assemble"):
        stop.wait()


def test_an_ffmpeg_killed_mid_clip_is_retried_and_its_slot_completes(stack: Stack) -> None:
    # Given a running job whose clips take a moment: each ffmpeg starts a second late (CI, loaded, once
    # looked for a clip's ffmpeg for 60 s while all six ran and ended between two looks)
    stack.env.update(FAST_RECONCILE)
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, 1.0)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    stack.cdn.latency_ms = 100
    job_id = new_job_id("ffkill")
    request = small_request(stack, job_id, 6)
    try:
        submit(stack, request)
        # When one clip's ffmpeg is SIGKILLed from outside (as the OOM killer would)
        wait_for("a clip's ffmpeg", lambda: bool(ffmpeg_pids(f"{job_id}/clips/")), timeout=60, every=0.01)
        os.kill(ffmpeg_pids(f"{job_id}/clips/")[0], signal.SIGKILL)
        result = wait_final(stack, job_id)
    finally:
        stack.cdn.latency_ms = 0
    # Then the clip says why, is retried, and the job completes whole
    retried = [
        e
        for e in job_events(stack, "twelvelabs.video_clip", job_id)
        if e["clip_status"] == "retrying" and "killed by signal 9" in e.get("error", "")
    ]
    assert len(retried) == 1, job_events(stack, "twelvelabs.video_clip", job_id)
    outcome = check_job(stack, request, result)
    assert outcome.clips_lost == 0 and outcome.assemblies == 1
    assert result["clip_stats"]["retries"] >= 1


# -- the supervisor itself stopped or killed ---------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): with the pid, it names one process even
    after the pid is reused. None for a process that is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def _tree(pid: int) -> dict[int, str]:
    """``pid`` and every process under it (ppid links, read from /proc), with their start times."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out: dict[int, str] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        started = _start_time(p)
        if started is not None:
            out[p] = started
        todo.extend(kids.get(p, []))
    return out


def _alive(tree: dict[int, str]) -> dict[int, str]:
    """The processes of ``tree`` still running (same pid, same start time), with their command lines."""
    out = {}
    for pid, started in tree.items():
        if _start_time(pid) == started:
            try:
                out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
            except OSError:
                continue
    return out


def _slow_clip_ffmpeg(stack: Stack, delay_s: float) -> str:
    """An ffmpeg that waits ``delay_s`` and then becomes the real one (exec: one process throughout,
    unlike a shell script whose ``sleep`` child would be a process of its own). Returns its path."""
    import shutil
    import sys

    bin_dir = stack.tmp / "waiting-ffmpeg"
    bin_dir.mkdir(exist_ok=True)
    real = shutil.which("ffmpeg")
    probe = shutil.which("ffprobe")
    assert real and probe
    script = bin_dir / "ffmpeg"
    script.write_text(
        f"#!{sys.executable}\nimport os, sys, time\ntime.sleep({delay_s})\n"
        f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
    )
    script.chmod(0o755)
    (bin_dir / "ffprobe").symlink_to(probe)
    return str(script)


def _job_in_flight(
    stack: Stack, delay_s: float, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], dict[str, Any], dict[int, str]]:
    """A ``clipline worker --stage all`` whose ffmpeg waits ``delay_s``, with a job's clips running.
    Returns the supervisor, the request, and every process under the supervisor (ffmpeg included)."""
    stack.env.update(FAST_RECONCILE)
    init_db(stack)
    real = stack.env.get("CLIPLINE_FFMPEG")
    stack.env["CLIPLINE_FFMPEG"] = _slow_clip_ffmpeg(stack, delay_s)
    try:
        supervisor = stack.start_workers("--stage", "all", "--concurrency", "2", *extra, name="doomed")
    finally:
        stack.env.pop("CLIPLINE_FFMPEG")
        if real is not None:
            stack.env["CLIPLINE_FFMPEG"] = real
    request = small_request(stack, new_job_id("supkill"), 6)
    submit(stack, request)
    job_id = str(request["job_id"])
    wait_for("a clip's ffmpeg", lambda: bool(ffmpeg_pids(f"{job_id}/clips/")), timeout=120, every=0.05)
    tree = _tree(supervisor.pid)
    # the supervisor, 4 stage commands, their worker processes, and at least one ffmpeg
    assert len(tree) >= 10, tree
    return supervisor, request, tree


def _gone_within(tree: dict[int, str], timeout_s: float) -> float:
    """Seconds until no process of ``tree`` runs; fails naming the survivors after ``timeout_s``."""
    started = time.monotonic()
    left: dict[int, str] = {}

    def none_left() -> bool:
        nonlocal left
        left = _alive(tree)
        return not left

    try:
        wait_for("the worker's processes to end", none_left, timeout=timeout_s, every=0.1)
    except AssertionError:
        for pid in left:  # leave nothing running for the next test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise AssertionError(f"still running {timeout_s:g} s after the supervisor ended: {left}") from None
    return time.monotonic() - started


def _finish_with_a_new_worker(stack: Stack, request: dict[str, Any]) -> Outcome:
    stack.start_workers("--stage", "all", "--concurrency", "2", name="replacement")
    result = wait_final(stack, str(request["job_id"]), timeout=240)
    return check_job(stack, request, result)


def test_a_supervisor_sigkilled_takes_every_process_of_its_worker_with_it(stack: Stack) -> None:
    # Given a worker of all stages with clips (and their ffmpeg) running
    supervisor, request, tree = _job_in_flight(stack, delay_s=2.0)
    # When the supervisor alone is SIGKILLed (OOM killer, `docker kill`, a stop that ran out of time)
    supervisor.kill()
    supervisor.wait(10)
    # Then every stage command, worker process and ffmpeg under it ends within 15 s
    took = _gone_within(tree, 15)
    print(f"\nsupervisor SIGKILLed: {len(tree)} processes gone {took:.2f} s later")
    # And a new worker finishes the job, assembling it exactly once
    outcome = _finish_with_a_new_worker(stack, request)
    assert outcome.clips_lost == 0 and outcome.assemblies == 1


def test_a_supervisor_sigtermed_stops_its_worker_within_the_shutdown_timeout(stack: Stack) -> None:
    # Given a worker told to wait at most 2 s for running messages, with clips whose ffmpeg needs 60 s
    supervisor, request, tree = _job_in_flight(stack, delay_s=60.0, extra=("--shutdown-timeout", "2"))
    # When it is stopped with SIGTERM
    supervisor.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    # Then it exits and nothing of it is left within the grace time plus 15 s
    took = _gone_within(tree, 2 + 15)
    assert supervisor.wait(1) == 0
    print(f"\nsupervisor SIGTERMed (shutdown timeout 2 s): {len(tree)} processes gone {took:.2f} s later")
    assert time.monotonic() - stopped_at < 2 + 15
    # And a new worker finishes the job, assembling it exactly once
    outcome = _finish_with_a_new_worker(stack, request)
    assert outcome.clips_lost == 0 and outcome.assemblies == 1


def test_a_supervisor_sigtermed_lets_running_clips_finish(stack: Stack) -> None:
    # Given clips that need about 3 s each, running under a worker with the default shutdown timeout
    supervisor, request, tree = _job_in_flight(stack, delay_s=3.0)
    job_id = str(request["job_id"])
    running = clip_events(stack, job_id, ("started",)).keys() - clip_events(stack, job_id, FINAL_CLIP).keys()
    assert running, "no clip was running at the stop"
    # When it is stopped with SIGTERM
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(120) == 0
    # Then the clips it was running finished before it exited, and it left nothing behind
    finished = clip_events(stack, job_id, FINAL_CLIP).keys()
    assert running <= finished, (running, finished)
    assert not _alive(tree)
    outcome = _finish_with_a_new_worker(stack, request)
    assert outcome.clips_lost == 0 and outcome.assemblies == 1
