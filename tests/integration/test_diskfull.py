"""A full disk: the job whose work or output directory is full FAILs clearly; other jobs are unharmed.

The full disk is a tiny tmpfs mounted on that one job's directory
(``{work_dir}/{job_id}`` or ``{output_dir}/{job_id}``), so the same workers
serve a second job on the normal disk at the same time. Needs root (mount).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from clipline.dev.samples import count_frames
from pipeline.models import parse_request
from pipeline.timeline import total_frames

from .conftest import Stack, new_job_id
from .faultkit import (
    FINAL_CLIP,
    clip_events,
    ffmpeg_pids,
    init_db,
    render_queues_drained,
    small_request,
    submit,
    wait_final,
)
from .test_kills import FAST_RECONCILE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

SPACE_WORDS = ("No space left on device", "ENOSPC", "disk full")


@contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def assert_failed_for_space(stack: Stack, job_id: str, result: dict[str, object], lines: int) -> None:
    assert result["status"] == "FAILED", result
    error = str(result["error"])
    assert any(w in error for w in SPACE_WORDS), f"the error does not name the full disk: {error!r}"
    out = Path(stack.env["CLIPLINE_OUTPUT_DIR"]) / job_id
    assert not (out / "final.mp4").exists()
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert [n for n in left if n != "report.json"] == [], f"partial files left in the output dir: {left}"
    assert sorted(clip_events(stack, job_id, FINAL_CLIP)) == list(range(lines))  # every slot reached an end
    assert len(stack.job_finished(job_id)) == 1
    assert not ffmpeg_pids(job_id)


def assert_whole(result: dict[str, object], request: dict[str, object]) -> None:
    assert result["status"] == "COMPLETED", result
    assert count_frames(Path(str(result["output_path"]))) == total_frames(parse_request(request))


def start(stack: Stack) -> None:
    stack.env.update(FAST_RECONCILE)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")


def test_a_full_work_dir_fails_that_job_clearly_and_spares_the_other(stack: Stack) -> None:
    start(stack)
    full_id, other_id = new_job_id("full-work"), new_job_id("beside")
    full_req, other_req = small_request(stack, full_id, 6), small_request(stack, other_id, 6)
    work = Path(stack.env["CLIPLINE_WORK_DIR"])
    with tiny_tmpfs(work / full_id, "48k"):  # room for the sidecars, not for the clips
        submit(stack, full_req)
        submit(stack, other_req)
        full = wait_final(stack, full_id)
        other = wait_final(stack, other_id)
    assert_failed_for_space(stack, full_id, full, 6)
    assert_whole(other, other_req)
    render_queues_drained(stack.env["CLIPLINE_BROKER_URL"])


def test_a_full_output_dir_fails_the_job_with_no_partial_final_mp4(stack: Stack) -> None:
    start(stack)
    full_id, other_id = new_job_id("full-out"), new_job_id("beside")
    full_req, other_req = small_request(stack, full_id, 6), small_request(stack, other_id, 6)
    out = Path(stack.env["CLIPLINE_OUTPUT_DIR"])
    with tiny_tmpfs(out / full_id, "64k"):  # the report fits, the video does not
        submit(stack, full_req)
        submit(stack, other_req)
        full = wait_final(stack, full_id)
        other = wait_final(stack, other_id)
        assert_failed_for_space(stack, full_id, full, 6)
        report = json.loads((out / full_id / "report.json").read_text())
        assert report["status"] == "FAILED" and len(report["slots"]) == 6
    assert_whole(other, other_req)
    render_queues_drained(stack.env["CLIPLINE_BROKER_URL"])
