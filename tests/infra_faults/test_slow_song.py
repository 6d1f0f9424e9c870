"""Outside audit H (the test failed on the code before its fix).

A song URL that drips (answers, then sends a byte now and then, never finishing before its deadline).

The whole download is bounded by ``CLIPLINE_AUDIO_DEADLINE_S`` (300 s by default), but it runs inside
stage threads that every job shares: the plan stage prepares the song right after its fan-out
(``pipeline/planning.py::fanned_out`` -> ``audio.prepare(ctx, view, wait_s=0)``, in the ``plan_render``
actor; 2 plan threads per worker command, ``clipline/worker.py::OTHER_THREADS``), and the assembler (1
thread) waits up to ``SONG_LOCK_WAIT_S`` (120 s) for the song's lease held by that download, then
downloads it again itself. Two jobs with a dripping song thus hold every plan thread, and then the
assembly thread, for the deadline: healthy jobs submitted after them are neither planned nor assembled.
"""

from __future__ import annotations

import time

import pytest

from pipeline.store import JobStore
from tests.integration.conftest import Stack, new_job_id
from tests.integration.faultkit import init_db, job_events, sigkill_worker, small_request, submit, wait_for
from tests.integration.hostile import HostileServer

pytestmark = pytest.mark.integration

DEADLINE_S = 20
WINDOW_S = 15


def test_jobs_with_a_dripping_song_do_not_hold_up_a_healthy_job(stack: Stack) -> None:
    """One worker (all stages). Two 2-line jobs whose song URL drips one byte every 0.2 s
    (``CLIPLINE_AUDIO_DEADLINE_S=20``); once both are planned, a healthy 2-line job is submitted.

    Observed: the healthy job is not even planned until a dripping download reaches its deadline (both
    plan threads are inside ``audio.prepare`` of the other jobs), and it is not final 15 s after its
    submission (its assembly then queues behind the other jobs' assemblies, each waiting on its song).

    Right: a song download (bounded by its own deadline) does not occupy the threads that plan and
    assemble other jobs, or is bounded far below the time a healthy job takes: the healthy job is planned
    at once and ends COMPLETED within seconds, whatever the other jobs' songs do."""
    stack.env["CLIPLINE_AUDIO_DEADLINE_S"] = str(DEADLINE_S)
    stack.env["CLIPLINE_RECONCILE_AFTER_S"] = "3600"
    init_db(stack)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    with HostileServer() as hostile:
        stack.start_workers("--stage", "all", "--concurrency", "2")
        slow = []
        for _ in range(2):
            job_id = new_job_id("drip")
            req = small_request(stack, job_id, 2)
            req["audio"] = {"url": hostile.url("/drip?n=1000000&every=0.2")}
            submit(stack, req)
            slow.append(job_id)
        for job_id in slow:
            planned = lambda j=job_id: bool(job_events(stack, "plan.ready", j))  # noqa: E731
            wait_for(f"{job_id} planned", planned, timeout=60)
        time.sleep(1)
        healthy = new_job_id("healthy")
        submitted = time.monotonic()
        submit(stack, small_request(stack, healthy, 2))
        planned_after = final_after = None
        while time.monotonic() - submitted < WINDOW_S:
            if planned_after is None and job_events(stack, "plan.ready", healthy):
                planned_after = round(time.monotonic() - submitted, 1)
            if store.get(healthy).status in ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED", "CANCELLED"):
                final_after = round(time.monotonic() - submitted, 1)
                break
            time.sleep(0.25)
        status = store.get(healthy).status
        for proc in stack.procs:  # its threads are in downloads or lease waits: no grace needed
            sigkill_worker(proc)
        stack.procs.clear()
    assert planned_after is not None and planned_after < 10, f"healthy job planned after {planned_after} s"
    assert final_after is not None and status == "COMPLETED", (
        f"healthy job {status} {WINDOW_S} s after its submission (planned after {planned_after} s)"
    )
