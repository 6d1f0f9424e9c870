"""Issue 12 item 4: every injected permanent fault ends the job in a final state, and its callback fires.

One worker (all stages) with the test settings' short backoffs runs four jobs at once, each with one
permanent fault: a song on a port where nothing listens, a "song" that is an HLS playlist, a video API
that answers 500 forever, and an assembly whose ffmpeg always fails. Each must reach a final state
within 3 minutes and call back once with that state.
"""

from __future__ import annotations

import shutil
import socket
import time
from typing import Any

import pytest

from .conftest import Stack, build_request, new_job_id
from .faultkit import FINAL_JOB, init_db, submit, wait_final
from .test_lifecycle import Receiver

pytestmark = pytest.mark.integration

BOUND_S = 180


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _failing_concat(stack: Stack, job_id: str) -> str:
    """An ffmpeg that fails every assembly (concat) of ``job_id`` and runs everything else."""
    bin_dir = stack.tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("ffmpeg", "ffprobe"):
        real = shutil.which(name)
        assert real, f"{name} not found"
        script = bin_dir / name
        fail = f'case "$*" in *"/{job_id}/concat.txt"*) exit 1;; esac'
        script.write_text(f'#!/bin/sh\n{fail}\nexec {real} "$@"\n')
        script.chmod(0o755)
    return str(bin_dir / "ffmpeg")


def test_every_permanent_fault_ends_its_job_and_calls_back(stack: Stack) -> None:
    receiver = Receiver(fail_first=0)
    try:
        jobs: dict[str, dict[str, Any]] = {}

        def job(name: str, *, api: bool = False, audio: bool = True) -> dict[str, Any]:
            job_id = new_job_id(name)
            picks = [("v_a", 0, 900, not api), ("v_b", 1000, 1900, not api)]
            body = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=audio)
            body["callback_url"] = receiver.url
            jobs[name] = body
            return body

        job("deadsong")["audio"] = {"url": f"http://127.0.0.1:{_dead_port()}/song.m4a"}
        job("playlistsong")["audio"] = {"url": stack.cdn.hls_url("v_a")}
        job("api500", api=True)
        stack.cdn.fail_next("/v1.3/", 500, 1_000_000)
        failing = job("assemblefails", audio=False)["job_id"]
        stack.env["CLIPLINE_FFMPEG"] = _failing_concat(stack, failing)
        stack.env["CLIPLINE_RECONCILE_AFTER_S"] = "5"
        stack.env["CLIPLINE_RECONCILE_INTERVAL_S"] = "2"
        init_db(stack)
        stack.start_workers("--stage", "all", "--concurrency", "2")

        started = time.monotonic()
        for body in jobs.values():
            submit(stack, body)
        took: dict[str, float] = {}
        results: dict[str, dict[str, Any]] = {}
        for name, body in jobs.items():
            results[name] = wait_final(stack, body["job_id"], timeout=BOUND_S)
            took[name] = round(time.monotonic() - started, 1)
        print("time to final state (s):", took)  # RELIABILITY.md quotes these
        assert all(r["status"] in FINAL_JOB for r in results.values()), results
        assert max(took.values()) < BOUND_S
        for name in ("deadsong", "playlistsong"):
            assert results[name]["status"] == "FAILED"
            assert jobs[name]["audio"]["url"] in results[name]["error"]
        assert "HLS playlist" in results["playlistsong"]["error"]
        assert results["assemblefails"]["status"] == "FAILED"
        assert results["api500"]["status"] in ("COMPLETED_WITH_GAPS", "FAILED")

        calls = receiver.wait_for(len(jobs), timeout=30)
        finals = {c["job_id"]: c["status"] for c in calls if c["status"] in FINAL_JOB}
        assert finals == {b["job_id"]: results[n]["status"] for n, b in jobs.items()}
    finally:
        receiver.close()
