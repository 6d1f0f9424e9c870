"""`clipline demo` ends by saying how to reach its job with the CLI, and that works from any shell."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIPLINE = str(Path(sys.executable).with_name("clipline"))
#: The demo works in ./.demo; here that is under .cache, so its sample media is built once per machine.
WHERE = ROOT / ".cache" / "demo-test"


def test_the_demo_prints_how_to_reach_its_jobs_and_that_works(
    vhost: str, redis_url: str, tmp_path: Path
) -> None:
    WHERE.mkdir(parents=True, exist_ok=True)
    for stale in (WHERE / ".demo").glob("*"):
        if stale.name != "media-cache":
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))}
    plain["PYTHONPATH"] = str(ROOT)
    services = {
        "CLIPLINE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "CLIPLINE_REDIS_URL": redis_url,
    }
    demo = subprocess.run(
        [CLIPLINE, "demo", "--lines", "4", "--concurrency", "2"],
        cwd=WHERE,
        env=plain | services,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr[-3000:]
    job_id = re.search(r"^job (\S+): COMPLETED in ", demo.stdout, re.M).group(1)  # type: ignore[union-attr]
    env_file = re.search(r"^  source (\S+)$", demo.stdout, re.M).group(1)  # type: ignore[union-attr]
    assert f"  clipline status {job_id}" in demo.stdout and CLIPLINE in demo.stdout

    # An operator's shell elsewhere, with only the printed line, sees the demo's job
    shell = subprocess.run(
        ["bash", "-c", f"source {env_file} && clipline status {job_id} --json && clipline jobs --json"],
        cwd=tmp_path,
        env=plain | {"PATH": f"{Path(CLIPLINE).parent}:{plain['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    status, listed = (json.loads(line) for line in shell.stdout.strip().splitlines()[-2:])
    assert status["job_id"] == job_id and status["status"] == "COMPLETED"
    assert Path(status["output_path"]).is_file()
    assert job_id in [j["job_id"] for j in listed["jobs"]]
    assert not (tmp_path / "clipline.db").exists()  # no stray database where the shell stood
