"""Fairness between jobs and draft mode, measured on the real pipeline (``python -m bench.run --fairness
--draft``).

- fairness: the 5-line job alone, the 70-line job alone, then the 70-line job with the 5-line job
  submitted 1 s after it. Targets: the small job behind the big one <= 2x its time alone; the big
  job's time grows by <= 10%.
- draft: the 60-line job rendered full and as a draft (``output.quality: "draft"``). Target: the draft
  >= 3x faster.

Each figure is a job's wall time, submit to finished, on one set of workers per profile.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from clipline.dev.cdn import LoopbackCDN

from . import job
from .harness import Env, Workers, job_figures, reset_state, submit, wait_final

BIG_LINES, SMALL_LINES, SMALL_AFTER_S = 70, 5, 1.0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--fairness", action="store_true", help="only: a 5-line job behind a 70-line job")
    ap.add_argument("--draft", action="store_true", help="only: the 60-line job as a draft against full")
    ap.add_argument("--extras-cap", type=int, default=4, help="clip cap of --fairness and --draft (4)")


def run(args: Any, samples: Any, redis_url: str, root: Any) -> dict[str, Any]:
    """{profile: {"fairness": ..., "draft": ...}} for each profile of ``--profiles``."""
    from .run import PROFILES

    out: dict[str, Any] = {}
    for name in args.profiles.split(","):
        with LoopbackCDN(samples.root, api_key=job.API_KEY, index_id=job.INDEX_ID, **PROFILES[name]) as cdn:
            env = Env(root / f"extras-{name}", cdn.api_url, samples.media_dir, redis_url)
            env.root.mkdir(parents=True, exist_ok=True)
            out[name] = {}
            if args.fairness:
                out[name]["fairness"] = fairness(env, cdn, args.extras_cap)
                print(f"[{name}] fairness: {out[name]['fairness']}", flush=True)
            if args.draft:
                out[name]["draft"] = draft(env, cdn, args.extras_cap)
                print(f"[{name}] draft: {out[name]['draft']}", flush=True)
    return out


def _wall(env: Env, job_id: str, workers: Workers) -> float:
    return float(job_figures(wait_final(env, job_id), workers.events())["wall_s"])


def fairness(env: Env, cdn: LoopbackCDN, cap: int) -> dict[str, Any]:
    reset_state(env)
    workers = Workers(env)
    workers.start("--stage", "all", "--concurrency", str(cap))
    try:
        workers.wait_ready(4)
        stamp = int(time.time())
        cpu = [workers.cpu_s()]
        submit(env, job.request(f"fair-small-alone-{stamp}", cdn, lines=SMALL_LINES, seed=8))
        small_alone = _wall(env, f"fair-small-alone-{stamp}", workers)
        cpu.append(workers.cpu_s())
        submit(env, job.request(f"fair-big-alone-{stamp}", cdn, lines=BIG_LINES, seed=7))
        big_alone = _wall(env, f"fair-big-alone-{stamp}", workers)
        cpu.append(workers.cpu_s())
        submit(env, job.request(f"fair-big-{stamp}", cdn, lines=BIG_LINES, seed=7))
        time.sleep(SMALL_AFTER_S)
        submit(env, job.request(f"fair-small-{stamp}", cdn, lines=SMALL_LINES, seed=8))
        small_behind = _wall(env, f"fair-small-{stamp}", workers)
        big_with_small = _wall(env, f"fair-big-{stamp}", workers)
        cpu.append(workers.cpu_s())
    finally:
        workers.stop()
    small_cpu, big_cpu, both_cpu = (round(b - a, 2) for a, b in zip(cpu, cpu[1:], strict=False))
    return {
        "cap": cap,
        "small_alone_s": small_alone,
        "small_behind_big_s": small_behind,
        "small_behind_over_alone": round(small_behind / small_alone, 2),
        "big_alone_s": big_alone,
        "big_with_small_s": big_with_small,
        "big_with_small_over_alone": round(big_with_small / big_alone, 3),
        # the workers' CPU seconds (ffmpeg and Python) for each job alone and for both together, and the
        # big job's growth were its cores never idle and the small job's CPU simply added to its own
        "small_alone_cpu_s": small_cpu,
        "big_alone_cpu_s": big_cpu,
        "both_cpu_s": both_cpu,
        "growth_floor": round((big_cpu + small_cpu) / big_cpu, 3) if big_cpu else None,
        "targets": "small_behind_over_alone <= 2; big_with_small_over_alone <= 1.10",
    }


def _clip_cpu_s(report_path: str) -> float:
    """The clips' ffmpeg CPU seconds in all (the report's ``cpu_ms`` per slot)."""
    slots = json.loads(Path(report_path).read_text())["slots"]
    return round(sum(s.get("cpu_ms") or 0 for s in slots) / 1000, 2)


def draft(env: Env, cdn: LoopbackCDN, cap: int) -> dict[str, Any]:
    reset_state(env)
    workers = Workers(env)
    workers.start("--stage", "all", "--concurrency", str(cap))
    try:
        workers.wait_ready(4)
        stamp = int(time.time())
        walls: dict[str, float] = {}
        frames: dict[str, Any] = {}
        per_clip: dict[str, Any] = {}
        for quality in ("final", "draft"):
            req = job.request(f"draft-{quality}-{stamp}", cdn)
            req["output"]["quality"] = quality
            submit(env, req)
            record = wait_final(env, req["job_id"])
            figures = job_figures(record, workers.events())
            walls[quality], frames[quality] = figures["wall_s"], figures["frames"]
            per_clip[quality] = {
                "ffmpeg_cpu_s": _clip_cpu_s(record.report_path),
                "extract_p50_ms": figures["extract_p50_ms"],
                "assembly_ms": figures["assembly_ms"],
            }
    finally:
        workers.stop()
    return {
        "cap": cap,
        "full_s": walls["final"],
        "draft_s": walls["draft"],
        "full_over_draft": round(walls["final"] / walls["draft"], 2),
        "same_frames": frames["final"] == frames["draft"],
        "clips": per_clip,
        "target": "full_over_draft >= 3",
    }
