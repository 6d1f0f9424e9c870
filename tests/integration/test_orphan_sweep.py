"""A host running only clip workers removes its scratch of jobs whose records are gone, as assemble
hosts do (``clipline.sweeper.OrphanSweeper``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipeline.models import parse_request
from pipeline.retention import ORPHAN_AFTER_S
from pipeline.store import JobStore

from .conftest import Stack, build_request, new_job_id

pytestmark = pytest.mark.integration


def _old_folder(root: Path, name: str) -> Path:
    folder = root / name / "segments"
    folder.mkdir(parents=True)
    (folder / "seg_00001.ts").write_bytes(b"\x47" * 188)
    old = time.time() - ORPHAN_AFTER_S - 60
    for path in (folder / "seg_00001.ts", folder, folder.parent):
        os.utime(path, (old, old))
    return folder.parent


@pytest.mark.parametrize("stage", ["clip", "fallback"])
def test_a_clip_only_host_sweeps_its_scratch_of_removed_jobs(stack: Stack, stage: str) -> None:
    # Given this host's scratch holds a removed job's segments, and a live job's, both untouched for long
    work = Path(stack.env["CLIPLINE_WORK_DIR"])
    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    live_id = new_job_id("live")
    body = build_request(live_id, stack.cdn, [("v_a", 0, 900, True)], line_ms=lambda i: 1000, audio=False)
    store.create_or_get(parse_request(body))
    removed = _old_folder(work, new_job_id("removed"))
    live = _old_folder(work, live_id)
    not_a_job = _old_folder(work, "not a job id!")
    # When a worker command of that stage alone runs on the host
    stack.env["CLIPLINE_RECONCILE_INTERVAL_S"] = "0.5"
    stack.start_workers("--stage", stage, "--concurrency", "1")
    deadline = time.monotonic() + 30  # the folder goes, then its line is logged: wait for both
    while (removed.exists() or not stack.events("retention.orphan_removed")) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Then the removed job's scratch is gone; the live job's and a folder not named like a job stay
    assert not removed.exists()
    assert live.exists() and not_a_job.exists()
    assert [e["job_id"] for e in stack.events("retention.orphan_removed")] == [removed.name]
