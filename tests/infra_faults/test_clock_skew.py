"""A clock that jumps (or a host whose clock is ahead of the others) and the liveness of an assembler.

Outside audit, fixed since (the test failed before): ``pipeline/heartbeat.py`` wrote each holder's mark
as an absolute wall-clock deadline computed on the holder's host (``time.time() + ttl_s``) and ``gone()``
compared it with ``time.time()`` on the sweeping host. A sweeper whose clock was more than the heartbeat
TTL (10 s) ahead -- a clock stepped forward by NTP, a VM resumed, a host whose NTP is broken -- saw every
live assembler as dead. Liveness is now a key per holder with a TTL that Redis expires (and Redis
``TIME`` for the no-mark wait): no two hosts' clocks are compared.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pipeline.store import JobStore
from tests.integration.conftest import Stack, new_job_id
from tests.integration.faultkit import FINAL_JOB, init_db, small_request, submit, wait_for
from tests.integration.test_stage_owners import _events, held_assembly_ffmpeg, holders

pytestmark = pytest.mark.integration

AHEAD_S = 15

SWEEP_AHEAD = (
    "import time, sys; _real = time.time; time.time = lambda: _real() + {ahead};"
    "from clipline.cli import main; sys.exit(main(['reconcile', '--stale-after', '1']))"
)


def test_a_sweeper_whose_clock_is_ahead_leaves_a_live_assembler_alone(
    stack: Stack,
) -> None:
    """A 3-line job's assembly runs (its concat held, its heartbeat beating every 3.3 s); a second assembler
    worker is running, as operators scale. A sweep (``clipline reconcile --stale-after 1``) runs on a host
    whose clock is 15 s ahead (emulated in that process by shifting ``time.time``).

    Before the fix: the sweep took the beating assembler for dead ("the assembler holding the lock is
    dead; lock freed"), deleted its lock and re-sent assembly: a second assembly started beside the live
    one (two concats held), which README/RELIABILITY say never happens ("a live assembler is never
    doubled").

    Now: liveness does not depend on two hosts' wall clocks agreeing (each holder's key has a TTL that
    Redis expires), so the live assembler is left alone and there is one assembly."""
    flag, held = stack.tmp / "hold-assembly", stack.tmp / "held"
    stack.env.update(
        {
            "CLIPLINE_RECONCILE_AFTER_S": "3600",  # the workers' own sweeps stay out of it
            "CLIPLINE_FFMPEG": held_assembly_ffmpeg(stack, flag, held),
        }
    )
    init_db(stack)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    flag.touch()
    stack.start_workers("--stage", "all", "--concurrency", "2", name="all")
    stack.start_workers("--stage", "assemble", name="assemble")
    job_id = new_job_id("skew")
    submit(stack, small_request(stack, job_id, lines=3, audio=False))
    try:
        wait_for("the assembler's concat held", lambda: len(holders(held)) == 1, timeout=90)
        time.sleep(1.5)  # the record is older than the sweep's stale time
        res = subprocess.run(
            [sys.executable, "-c", SWEEP_AHEAD.format(ahead=AHEAD_S)],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        time.sleep(3)  # a re-sent assembly would be picked up by the idle second assembler by now
        doubled = len(holders(held))
        repaired = res.stdout.strip()
    finally:
        flag.unlink(missing_ok=True)
        for h in holders(held):
            h.unlink(missing_ok=True)
    wait_for("the job final", lambda: store.get(job_id).status in FINAL_JOB, timeout=60)
    assert doubled == 1, f"{doubled} assemblies running at once; the sweep said: {repaired}"
    assert len(_events(stack, "assemble.started", job_id)) == 1
