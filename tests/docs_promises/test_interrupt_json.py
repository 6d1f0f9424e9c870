"""README: "Under ``--json`` stdout ends with one JSON object whatever happens"; exit 130 is "interrupted
(Ctrl-C)"."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from .helpers import clipline, one_line_request, scratch_env


def test_ctrl_c_during_status_watch_json_ends_with_an_interrupted_json_object(
    tmp_path: Path, redis_url: str
) -> None:
    """``clipline status JOB --watch --json`` interrupted with Ctrl-C exits 130 and its last stdout
    line is ``{"error": {"code": "interrupted", ...}, "exit_code": 130}``. Before: exit 130 with
    nothing on stdout (clipline/cli.py:main returned on KeyboardInterrupt without the JSON object
    every other ending prints)."""
    env = scratch_env(tmp_path, CLIPLINE_REDIS_URL=redis_url)
    request = tmp_path / "req.json"
    request.write_text(json.dumps(one_line_request("af-int-1")))
    assert clipline(env, "submit", str(request)).returncode == 3  # broker down: recorded as PENDING
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "status", "af-int-1", "--watch", "--json"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # interrupted once it is watching (its first progress line on stderr), not while it is still
        # starting: a fresh clone under load took over 4 s to import, and a Ctrl-C then ends Python
        # before clipline's code runs (CI saw exit -2)
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        seen = ""
        while "af-int-1 PENDING" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stderr], [], [], 0.5)[0]:  # read from the pipe itself, unbuffered
                seen += os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
        assert "af-int-1 PENDING" in seen, seen[-300:]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130, (proc.returncode, err[-300:])
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines, f"stdout is empty (stderr: {err[-200:]!r})"
    assert json.loads(lines[-1])["error"]["code"] == "interrupted"
