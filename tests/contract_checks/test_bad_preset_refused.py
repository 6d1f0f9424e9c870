"""README, exit codes: 2 = "... a bad option, setting or `CLIPLINE_*` variable ..." (`settings_invalid`);
"Workers refuse to start, with one line naming the problem"; CLIPLINE_X264_PRESET is the clip encoding's
x264 preset (default `veryfast`)."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_a_worker_with_a_misspelt_x264_preset_refuses_to_start(stack: Stack) -> None:
    """CLIPLINE_X264_PRESET is never checked: a worker started with a preset x264 does not have starts and
    takes clips (each of whose ffmpeg then fails), instead of refusing to start with exit 2."""
    stack.env["CLIPLINE_X264_PRESET"] = "veryfastt"
    proc = stack.start_workers("--stage", "clip", "--metrics-port", "0")
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    running = proc.poll() is None
    if running:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    log = stack.logs[-1].read_text(errors="replace")
    assert not running, "the worker was still running 30 s after start: " + log[-800:]
    assert proc.returncode == 2 and "CLIPLINE_X264_PRESET" in log, log[-800:]
