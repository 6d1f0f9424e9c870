"""Outside audit H (each test here failed on the code before its fix).

A plan whose fan-out fails half-way (the broker connection lost while it publishes the clip messages).

``actors/plan.py::_fan_out`` frees the plan lock and re-raises, so Dramatiq retries the plan message;
tests/pipeline/test_job_faults.py (RELIABILITY.md: "a plan fails half-way ... the next delivery plans")
holds that the retry plans again. But the clips already sent start at once, and the first one moves the
job PLANNING -> EXTRACTING (``clipstage._run_clip``); the retried plan then stops at
``pipeline/planning.py::plan``: ``if status not in (PENDING, PLANNING): return Plan(request, False, "job is
already EXTRACTING")`` -- and the clips that were never sent are never sent. The job stays EXTRACTING with
slots that have no message anywhere, until a reconciler sweep (90 s + up to 30 s by default, one of its 5
repairs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.store import JobStore
from tests.integration.conftest import Stack, new_job_id
from tests.integration.faultkit import (
    FINAL_CLIP,
    FINAL_JOB,
    clip_events,
    init_db,
    job_events,
    small_request,
    submit,
    wait_for,
)

pytestmark = pytest.mark.integration

HOOK = Path(__file__).resolve().parent / "fanout_break"


def test_a_fan_out_that_fails_half_way_still_sends_every_clip(stack: Stack) -> None:
    """6-line job, one worker (all stages). The plan's fan-out sends clips 0 and 1, then its publish of
    clip 2 fails with ``ConnectionClosed`` (injected once, 2 s later, by ``fanout_break/sitecustomize.py``);
    Dramatiq retries the plan message.

    Observed: clips 0 and 1 are cut, the retried plan logs ``plan.skip`` ("job is already EXTRACTING"),
    clips 2-5 are never sent, and the job stays EXTRACTING (the reconciler's stale time is an hour here so
    that it does not hide this).

    Right: the retried delivery finishes the fan-out it interrupted (sending the clips without an outcome;
    the clip stage is idempotent), and the job ends COMPLETED within seconds."""
    stack.env["CLIPLINE_RECONCILE_AFTER_S"] = "3600"
    init_db(stack)
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    plain = stack.env
    stack.env = {
        **plain,
        "BREAK_FANOUT_AT": str(stack.tmp / "fanout-broken"),
        "PYTHONPATH": f"{HOOK}:{plain['PYTHONPATH']}",
    }
    stack.start_workers("--stage", "all", "--concurrency", "2")
    stack.env = plain
    job_id = new_job_id("fanout")
    submit(stack, small_request(stack, job_id, 6))
    try:
        wait_for("the job final", lambda: store.get(job_id).status in FINAL_JOB, timeout=30, every=0.5)
    except AssertionError:
        pass
    job = store.get(job_id)
    assert (stack.tmp / "fanout-broken").exists(), "the fault was not injected"
    skips = [e.get("reason") for e in job_events(stack, "plan.skip", job_id)]
    assert job.status == "COMPLETED", (
        f"{job.status} 30 s after submission; "
        f"clip outcomes {sorted(clip_events(stack, job_id, FINAL_CLIP))}; "
        f"plan.skip: {skips}"
    )
