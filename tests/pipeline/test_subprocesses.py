"""The one subprocess runner: timeouts kill the group, errors carry stderr, missing binaries are named."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.errors import FFmpegFailed, FFmpegMissing, FFmpegTimeout
from pipeline.subprocesses import kill_tagged, run


def test_success_returns_output() -> None:
    assert run(["sh", "-c", "printf hi"], timeout_s=5).stdout == b"hi"


def test_failure_keeps_the_stderr_tail() -> None:
    with pytest.raises(FFmpegFailed) as err:
        run(["sh", "-c", "echo boom >&2; exit 3"], timeout_s=5)
    assert err.value.returncode == 3 and "boom" in str(err.value)


def test_timeout_kills_the_whole_group() -> None:
    started = time.monotonic()
    with pytest.raises(FFmpegTimeout):
        run(["sh", "-c", "sleep 30 & sleep 30"], timeout_s=0.3)
    assert time.monotonic() - started < 5


def test_missing_binary_is_named() -> None:
    with pytest.raises(FFmpegMissing, match="no-such-ffmpeg"):
        run(["/nonexistent/no-such-ffmpeg"], timeout_s=1)


def test_kill_tagged_stops_a_jobs_processes() -> None:
    errors: list[BaseException] = []

    def go() -> None:
        try:
            run(["sleep", "30"], timeout_s=60, tag="job-x")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 5
    while kill_tagged("job-x") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    t.join(5)
    assert errors and isinstance(errors[0], FFmpegFailed) and "signal 9" in str(errors[0])
