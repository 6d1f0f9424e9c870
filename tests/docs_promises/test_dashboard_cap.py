"""Grafana "Clips in flight vs cap" (README: "clips in flight against the cap"; scale-out by
``docker-compose up --scale worker-clip=3`` or ``--processes N``) against what the workers export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.private import free_port

from .helpers import ROOT, scratch_env


def _panel_targets() -> dict[str, str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "clipline.json").read_text())
    for panel in dashboard["panels"]:
        exprs = [t["expr"] for t in panel.get("targets", [])]
        if any("clipline_clips_in_flight" in e for e in exprs):
            return {t.get("legendFormat", ""): t["expr"] for t in panel["targets"]}
    raise AssertionError("no in-flight panel")


def test_in_flight_is_compared_with_the_cap_of_the_whole_cluster() -> None:
    """The panel plots ``sum(clipline_clips_in_flight)`` against ``sum(clipline_clip_concurrency)``:
    both over every clip worker. Before: against ``max(clipline_clip_concurrency)`` (one worker's
    cap), so 3 clip workers of cap 4 at capacity (12 in flight) were drawn three times over a "cap"
    of 4."""
    targets = _panel_targets()
    cap = next(e for legend, e in targets.items() if "clip_concurrency" in e)
    assert cap.replace(" ", "") == "sum(clipline_clip_concurrency)", targets


def test_a_plan_only_worker_does_not_report_a_clip_capacity(
    tmp_path: Path, vhost: str, redis_url: str
) -> None:
    """``clipline worker --stage plan`` (which cuts no clip) serves ``clipline_clip_concurrency`` 0 (or
    not at all): only processes that consume the clip queue set it. Before: 4.0
    (actors/middleware.py:LiveSettings set the gauge in every stage process), so a sum over the
    compose services counted capacity that does not exist."""
    port = free_port()
    env = scratch_env(
        tmp_path,
        CLIPLINE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        CLIPLINE_REDIS_URL=redis_url,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipline.cli", "worker", "--stage", "plan", "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        scrape, deadline = "", time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                if "dramatiq_" in scrape or "clipline_clip_concurrency" in scrape:
                    time.sleep(1)
                    scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        values = [
            float(ln.split()[-1])
            for ln in scrape.splitlines()
            if ln.startswith("clipline_clip_concurrency") and not ln.startswith("#")
        ]
        assert scrape, "the plan worker's metrics endpoint never answered"
        assert all(v == 0 for v in values), values
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
