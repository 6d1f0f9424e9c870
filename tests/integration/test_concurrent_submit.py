"""Spec 002: the same job submitted 5 times at once renders once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import Stack, new_job_id
from .faultkit import check_job, clip_events, job_events, small_request, wait_final

pytestmark = pytest.mark.integration


def test_the_same_job_submitted_five_times_at_once_renders_once(stack: Stack) -> None:
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("five")
    request = small_request(stack, job_id, 8)
    path = stack.tmp / "five.json"
    path.write_text(json.dumps(request, ensure_ascii=False))

    submits = [
        subprocess.Popen(
            [sys.executable, "-m", "clipline.cli", "submit", str(path), "--json"],
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    outs = [p.communicate(timeout=120) for p in submits]
    assert [p.returncode for p in submits] == [0] * 5, [err for _, err in outs]
    ids = {json.loads(out.strip().splitlines()[-1])["job_id"] for out, _ in outs}
    assert ids == {job_id}
    # One submission created the job; the four others found it
    assert sum("already exists" in err for _, err in outs) == 4, [err for _, err in outs]

    result = wait_final(stack, job_id)
    outcome = check_job(stack, request, result)
    assert outcome.status == "COMPLETED"
    assert len(job_events(stack, "plan.ready", job_id)) == 1  # one plan fan-out
    queued = clip_events(stack, job_id, ("queued",))
    assert queued == {i: 1 for i in range(8)}, queued  # one clip message per slot
    assert outcome.assemblies == 1 and outcome.assembly_starts == 1
