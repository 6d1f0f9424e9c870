"""Helpers of the docs-promises tests (audit F): run the real command line in a scratch environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


def scratch_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No clipline variable of the caller's; a private SQLite file and dirs; dead Redis/broker unless
    given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp}/clipline.db",
            "CLIPLINE_WORK_DIR": str(tmp / "work"),
            "CLIPLINE_OUTPUT_DIR": str(tmp / "output"),
            "CLIPLINE_MEDIA_DIR": str(tmp / "media"),
            "CLIPLINE_REDIS_URL": DEAD_REDIS,
            "CLIPLINE_BROKER_URL": DEAD_BROKER,
            "CLIPLINE_METRICS_PORT": "0",
        }
    )
    env.update(extra)
    return env


def clipline(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m clipline.cli ARGS`` as an operator runs it; a command still running at ``timeout`` is
    stopped (its whole process group) and reported with returncode None."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=env.get("CLIPLINE_WORK_DIR", str(ROOT)).rsplit("/", 1)[0],
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=5)
        return subprocess.CompletedProcess(proc.args, None, out, err)  # type: ignore[arg-type]


def last_json(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    assert lines, "nothing on stdout"
    obj: dict[str, Any] = json.loads(lines[-1])
    return obj


def one_line_request(job_id: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "trace_id": "4bf92f3577b34da6",
        "lines": [
            {
                "text": "a",
                "start_ms": 0,
                "end_ms": 1000,
                "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000, "hls_url": "http://127.0.0.1:9/x.m3u8"},
            }
        ],
    }
