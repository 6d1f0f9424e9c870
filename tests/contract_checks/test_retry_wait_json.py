"""README: "Under `--json` stdout ends with one JSON object whatever happens" and "`--json` prints the job
status object"; DESIGN.md: with `--wait` the command "blocks until the job is final", and the JSON's
`status` is the job's."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import Stack, build_request, new_job_id

from .helpers import last_json

pytestmark = pytest.mark.integration


def test_retry_wait_json_prints_the_final_status(stack: Stack) -> None:
    """`clipline retry JOB --wait --json` waits for the new attempt to end (and exits by its final status)
    but prints the job as it was when the retry started (PENDING, progress 0), not its final state."""
    stack.start_workers("--stage", "all", "--concurrency", "2", "--metrics-port", "0")
    job_id = new_job_id("auditc-retry")
    body = build_request(job_id, stack.cdn, [("v_gone", 0, 900, False)], line_ms=lambda i: 1000, audio=False)
    path = stack.tmp / "retry.json"
    path.write_text(json.dumps(body))
    first = stack.cli("submit", str(path), "--wait", "--json", timeout=300)
    assert first.returncode == 0 and last_json(first.stdout)["status"] == "COMPLETED_WITH_GAPS", first.stderr

    t0 = time.monotonic()
    again = stack.cli("retry", job_id, "--wait", "--json", timeout=300)
    waited = time.monotonic() - t0
    assert again.returncode == 0, again.stderr  # exit 0: the new attempt ended COMPLETED_WITH_GAPS
    printed = last_json(again.stdout)
    now = last_json(stack.cli("status", job_id, "--json").stdout)
    assert now["status"] == "COMPLETED_WITH_GAPS" and now["attempt"] == 2
    print(f"retry --wait took {waited:.1f} s")
    assert (printed["status"], printed["progress"], printed["attempt"]) == (
        now["status"],
        now["progress"],
        now["attempt"],
    ), printed
