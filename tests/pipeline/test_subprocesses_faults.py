"""subprocesses.run: a failed output write is an error even when the process exits 0; children die with us."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import FFmpegFailed
from pipeline.subprocesses import run


def test_a_full_disk_reported_with_exit_status_0_still_fails_and_names_the_disk() -> None:
    script = "echo 'Error writing trailer of /x/final.mp4: No space left on device' >&2; exit 0"
    with pytest.raises(FFmpegFailed) as err:
        run(["sh", "-c", script], timeout_s=10)
    assert "could not write its output: No space left on device" in str(err.value)


def test_an_ordinary_success_is_untouched() -> None:
    assert run(["sh", "-c", "echo ok; echo 'a warning' >&2"], timeout_s=10).stdout == b"ok\n"


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _children_of(ppid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                    kids.append(int(entry))
            except OSError:
                continue
    return kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
@pytest.mark.parametrize(
    "start",
    [
        "run(['sleep', '30'], timeout_s=60)",  # an ffmpeg
        "spawn(['sleep', '30'])",  # a stage process of clipline worker
        # what the demo, the tests' stack and the bench do to start a clipline worker
        "subprocess.Popen(['sleep', '30'], start_new_session=True, preexec_fn=tied_to_caller())",
    ],
)
def test_a_child_dies_with_a_sigkilled_parent(start: str) -> None:
    root = Path(__file__).resolve().parents[2]
    code = (
        f"import subprocess, sys, time; sys.path.insert(0, {str(root)!r}); "
        f"from pipeline.subprocesses import run, spawn, tied_to_caller; {start}; time.sleep(30)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not (kids := _children_of(parent.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kids, "the child never started"
    finally:
        parent.kill()
        parent.wait(10)
    deadline = time.monotonic() + 5
    while _state(kids[0]) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(kids[0]) in (None, "Z"), "the started child outlived its SIGKILLed parent"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_child_whose_parent_died_before_it_asked_ends_itself() -> None:
    # Given a process whose parent is not the one it was started by (that one died before prctl)
    root = Path(__file__).resolve().parents[2]
    code = (
        f"import os, sys; sys.path.insert(0, {str(root)!r}); "
        "from pipeline.subprocesses import die_with_parent; "
        "die_with_parent(os.getppid() + 1); print('survived')"
    )
    # When it asks to die with that parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    # Then it ends at once instead of running on as an orphan
    assert done.returncode == -9 and "survived" not in done.stdout
