"""The clip cache (issue 16.2): the same 60-line job rendered twice by the same workers, cache on.

The second job has a new id and the same request, so every clip is a cache hit: the figure is
first render against second render, wall time (target: the second >= 5x faster).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from clipline.dev.cdn import LoopbackCDN

from . import job
from .harness import Env, Workers, job_figures, reset_state, submit, wait_final

CACHE_BYTES = 2 * 2**30


def rerender(env: Env, cdn: LoopbackCDN, cap: int) -> dict[str, Any]:
    cache_dir = env.root / "clip-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    env.extra.update(
        {"CLIPLINE_CLIP_CACHE_BYTES": str(CACHE_BYTES), "CLIPLINE_CLIP_CACHE_DIR": str(cache_dir)}
    )
    reset_state(env)
    workers = Workers(env)
    workers.start("--stage", "all", "--concurrency", str(cap))
    out: dict[str, Any] = {"cap": cap}
    try:
        workers.wait_ready(4)
        for run in ("first", "second"):
            cdn.reset_counters()
            job_id = f"bench-cache-{run}-c{cap}-{int(time.time())}"
            submit(env, job.request(job_id, cdn))
            record = wait_final(env, job_id)
            figures = job_figures(record, workers.events())
            report = json.loads(Path(record.report_path).read_text())
            figures["cache"] = {
                r: sum(1 for s in report["slots"] if s.get("cache") == r) for r in ("hit", "miss")
            }
            figures["reused_twins"] = sum(1 for s in report["slots"] if s.get("reused_from") is not None)
            figures["cdn_bytes_hls"] = cdn.total_bytes("/hls/")
            out[run] = figures
        out["cache_bytes"] = sum(p.stat().st_size for p in cache_dir.rglob("*.mp4"))
        out["speedup"] = round(out["first"]["wall_s"] / max(out["second"]["wall_s"], 0.01), 2)
    finally:
        workers.stop()
        for k in ("CLIPLINE_CLIP_CACHE_BYTES", "CLIPLINE_CLIP_CACHE_DIR"):
            env.extra.pop(k, None)
    return out
