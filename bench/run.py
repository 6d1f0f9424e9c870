"""clipline benchmarks, side by side on this machine in one run.

    .venv/bin/python -m bench.run                  # everything (about 10 minutes on 2 cores)
    .venv/bin/python -m bench.run --profiles network --caps 1,4 --skip-throughput
    .venv/bin/python -m bench.run --only-storage   # the S3 backend against the file backend
    .venv/bin/python -m bench.run --cache --profiles cpu --caps 4 --skip-baselines --skip-storage
                                                   # the same job twice, clip cache on (issue 16.2)
    .venv/bin/python -m bench.run --profiles cpu --fairness --draft   # only these (bench/fairness.py)
    .venv/bin/python -m bench.run --profiles cpu --caps 4 --skip-storage --repeat 5
                                                   # clipline and the bare script 5 times each, in turns

Prints a table per profile and writes bench/results/latest.json. Needs the
services ./dev.sh starts (RabbitMQ, Redis) and ffmpeg.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from clipline.dev.cdn import LoopbackCDN
from tests.integration.redisdb import claimed_db

from . import baselines, cache, fairness, job, storage
from .harness import (
    Env,
    RssSampler,
    Workers,
    cpu_figures,
    drop_vhost,
    job_figures,
    reset_state,
    submit,
    wait_final,
)

PROFILES: dict[str, dict[str, Any]] = {
    "network": {"latency_ms": 300, "bandwidth_bps": 1_500_000},
    "cpu": {"latency_ms": 0, "bandwidth_bps": None},
}
CACHE = Path(".cache/bench-media")
RUN_ROOT = Path(os.environ.get("BENCH_RUN_ROOT", "/tmp/clipline-bench"))  # one per concurrent bench


def pipeline_run(env: Env, cdn: LoopbackCDN, cap: int, label: str) -> dict[str, Any]:
    reset_state(env)
    cdn.reset_counters()
    workers = Workers(env)
    proc = workers.start("--stage", "all", "--concurrency", str(cap))
    try:
        workers.wait_ready(4)
        job_id = f"bench-{label}-c{cap}-{int(time.time())}"
        req = job.request(job_id, cdn)
        with RssSampler(proc.pid) as rss:
            submit(env, req)
            record = wait_final(env, job_id)
        figures = job_figures(record, workers.events())
        figures["cdn_bytes_hls"] = cdn.total_bytes("/hls/")
        figures["needed_segment_bytes"] = job.needed_segment_bytes(samples_cache[0], req)
        figures["bytes_ratio"] = round(figures["cdn_bytes_hls"] / figures["needed_segment_bytes"], 3)
        figures["worker_rss_mb_total"] = round(rss.peak_total_kb / 1024, 1)
        figures["worker_rss_mb_max_process"] = round(rss.peak_one_kb / 1024, 1)
        figures["worker_python_cpu_s"] = rss.python_cpu_s
        return figures
    finally:
        workers.stop()


def baseline_runs(
    cdn: LoopbackCDN, cap: int, label: str, *, bare: bool = True, everything_first: bool = True
) -> dict[str, Any]:
    req = job.request(f"bench-{label}-baseline", cdn)
    urls = {s.video_id: cdn.hls_url(s.video_id) for s in job.SOURCES}
    out: dict[str, Any] = {}
    runs = [("bare_parallel_ffmpeg", baselines.bare_parallel_ffmpeg)] if bare else []
    if everything_first:
        runs.append(("download_everything_first", baselines.download_everything_first))
    for name, fn in runs:
        cdn.reset_counters()
        done = fn(req, urls, RUN_ROOT / name, cap)
        out[name] = {
            "wall_s": round(done.wall_s, 2),
            "cdn_bytes_hls": cdn.total_bytes("/hls/"),
            **cpu_figures([ms / 1000 for ms in done.clip_cpu_ms]),
        }
    return out


def compare_with_bare(fig: dict[str, Any], bare: dict[str, Any]) -> None:
    """Side by side at one cap: clipline's wall time over the bare script's, and both CPU s per clip."""
    fig["bare_wall_s"] = bare["wall_s"]
    fig["bare_cdn_bytes_hls"] = bare["cdn_bytes_hls"]
    fig["clipline_over_bare_wall"] = round(fig["wall_s"] / bare["wall_s"], 2)
    fig["bare_cpu_s_per_clip_mean"] = bare["cpu_s_per_clip_mean"]
    fig["bare_cpu_s_per_clip_p95"] = bare["cpu_s_per_clip_p95"]


def paired_runs(env: Env, cdn: LoopbackCDN, cap: int, label: str, pairs: int) -> dict[str, Any]:
    """``pairs`` runs of clipline and of the bare script at ``cap``, each pair in turns (clipline first,
    then the bare script first, ...) so neither always meets a machine the other just warmed or loaded.
    The figures of the pair with the median ratio, with every pair's walls and ratio and their median
    and spread: on a shared machine one pair's ratio moves by more than a change's effect."""
    runs = []
    for i in range(pairs):
        if i % 2:
            bare = baseline_runs(cdn, cap, label, everything_first=False)["bare_parallel_ffmpeg"]
            fig = pipeline_run(env, cdn, cap, label)
        else:
            fig = pipeline_run(env, cdn, cap, label)
            bare = baseline_runs(cdn, cap, label, everything_first=False)["bare_parallel_ffmpeg"]
        compare_with_bare(fig, bare)
        runs.append(fig)
        print(
            f"[{label}] cap {cap} pair {i + 1}/{pairs}: {fig['wall_s']} s vs bare {fig['bare_wall_s']} s",
            flush=True,
        )
    ratios = sorted(r["clipline_over_bare_wall"] for r in runs)
    median = statistics.median(ratios)
    chosen = dict(min(runs, key=lambda r: abs(r["clipline_over_bare_wall"] - median)))
    chosen["pairs"] = [
        {
            k: r[k]
            for k in (
                "wall_s",
                "bare_wall_s",
                "clipline_over_bare_wall",
                "cpu_s_per_clip_mean",
                "bare_cpu_s_per_clip_mean",
                "worker_python_cpu_s",
            )
        }
        for r in runs
    ]
    chosen["clipline_over_bare_wall_median"] = round(median, 3)
    chosen["clipline_over_bare_wall_range"] = [ratios[0], ratios[-1]]
    return chosen


def throughput_and_fairness(env: Env, cdn: LoopbackCDN) -> dict[str, Any]:
    """5 jobs of 20 lines at once on 2 clip worker processes; then a 5-line job behind a 70-line job."""
    reset_state(env)
    workers = Workers(env)
    workers.start("--stage", "clip", "--concurrency", "4", "--processes", "2")
    for stage in ("plan", "fallback", "assemble"):
        workers.start("--stage", stage)
    try:
        workers.wait_ready(5)
        t0 = time.time()
        ids = [f"thr-{i}-{int(t0)}" for i in range(5)]
        for i, job_id in enumerate(ids):
            submit(env, job.request(job_id, cdn, lines=20, seed=100 + i))
        done = [wait_final(env, j) for j in ids]
        last = max(
            d.finished_at.timestamp()
            if d.finished_at.tzinfo
            else d.finished_at.replace(tzinfo=__import__("datetime").UTC).timestamp()
            for d in done
        )
        jobs_per_min = round(5 / (last - t0) * 60, 2)
        big, small = f"big-{int(time.time())}", f"small-{int(time.time())}"
        submit(env, job.request(big, cdn, lines=70, seed=7))
        submit(env, job.request(small, cdn, lines=5, seed=8))
        small_rec = wait_final(env, small)
        big_rec = wait_final(env, big)
        ev = workers.events()
        return {
            "jobs_per_minute_5x20": jobs_per_min,
            "small_behind_big_wall_s": job_figures(small_rec, ev)["wall_s"],
            "big_wall_s": job_figures(big_rec, ev)["wall_s"],
        }
    finally:
        workers.stop()


def live_config_reaction(env: Env, cdn: LoopbackCDN) -> dict[str, Any]:
    """Seconds from `clipline config set render_clip_concurrency 1` to workers obeying it."""
    import subprocess
    import sys

    reset_state(env)
    workers = Workers(env)
    workers.start("--stage", "all", "--concurrency", "4")
    try:
        workers.wait_ready(4)
        job_id = f"live-{int(time.time())}"
        submit(env, job.request(job_id, cdn, lines=40, seed=21))
        time.sleep(4)
        t_set = time.time()
        subprocess.run(
            [sys.executable, "-m", "clipline.cli", "config", "set", "render_clip_concurrency", "1"],
            env=env.vars(),
            check=True,
            capture_output=True,
        )
        wait_final(env, job_id)
        subprocess.run(
            [sys.executable, "-m", "clipline.cli", "config", "unset", "render_clip_concurrency"],
            env=env.vars(),
            check=True,
            capture_output=True,
        )
        ev = workers.events()
        reload_ts = [
            datetime.fromisoformat(e["ts"]).timestamp()
            for e in ev
            if e.get("event") == "config.reloaded"
            and e.get("key") == "render_clip_concurrency"
            and e.get("new") == 1
        ]
        edges: list[tuple[float, int]] = []
        for e in ev:
            if e.get("event") == "twelvelabs.video_clip" and e.get("job_id") == job_id:
                ts = datetime.fromisoformat(e["ts"]).timestamp()
                if e["clip_status"] == "started":
                    edges.append((ts, 1))
                elif e["clip_status"] in ("succeeded", "fallback_local", "placeholder", "failed"):
                    edges.append((ts, -1))
        running, obeyed_at, peak_after = 0, None, 0
        for ts, step in sorted(edges):
            running += step
            if ts >= t_set and obeyed_at is None and running <= 1:
                obeyed_at = ts
            if obeyed_at is not None:
                peak_after = max(peak_after, running)
        return {
            "reload_logged_after_s": round(min(reload_ts) - t_set, 2) if reload_ts else None,
            "in_flight_at_most_1_after_s": round(obeyed_at - t_set, 2) if obeyed_at else None,
            "peak_in_flight_after_obeyed": peak_after,
        }
    finally:
        workers.stop()


samples_cache: list[Any] = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="network,cpu")
    ap.add_argument("--caps", default="1,2,4,8")
    ap.add_argument("--baseline-cap", type=int, default=4)
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of clipline and of the bare script per cap, in turns; the median pair is reported",
    )
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-storage", action="store_true", help="no S3-against-file comparison")
    ap.add_argument("--only-storage", action="store_true", help="only the S3-against-file comparison")
    ap.add_argument(
        "--cache", action="store_true", help="only the clip cache re-render, per profile, at --caps"
    )
    ap.add_argument("--out", help="default bench/results/latest.json (fairness.json with --fairness/--draft)")
    fairness.add_arguments(ap)
    ap.add_argument(
        "--size",
        default=f"{job.WIDTH}x{job.HEIGHT}",
        help="sources and output of the job, WxH (default %(default)s; sources are built once per size)",
    )
    ap.add_argument(
        "--ladder",
        action="store_true",
        help="with --draft: sources as master playlists of two renditions, the job's size and half of it",
    )
    ap.add_argument(
        "--ref",
        metavar="GIT_REV",
        help="run this same bench (today's bench/) against the code of an older revision, in a git worktree",
    )
    args = ap.parse_args()
    if args.ref:
        raise SystemExit(run_at_ref(args.ref))
    from pipeline import logs

    logs.configure("WARNING", json_output=False)
    job.resize(args.size)
    if args.ladder and not args.draft:
        ap.error("--ladder goes with --draft (the bytes ratio and baselines read single-rendition sources)")
    samples = job.ladder_media(CACHE) if args.ladder else job.media(CACHE)
    samples_cache.append(samples)
    results: dict[str, Any] = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "started": datetime.now().isoformat(timespec="seconds"),
        "profiles": {},
    }
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    with claimed_db("bench") as redis_url:
        try:
            if args.fairness or args.draft:
                results["extras"] = fairness.run(args, samples, redis_url, RUN_ROOT)
            elif not args.only_storage:
                run_profiles(args, job, samples, redis_url, results)
            if not args.skip_storage and not (args.fairness or args.draft):
                with LoopbackCDN(samples.root, api_key=job.API_KEY, index_id=job.INDEX_ID) as cdn:
                    env = Env(RUN_ROOT / "storage", cdn.api_url, samples.media_dir, redis_url)
                    env.root.mkdir(parents=True, exist_ok=True)
                    results["storage"] = storage.compare(env, cdn)
        finally:
            drop_vhost()
    extras_only = args.fairness or args.draft
    out = Path(args.out or ("bench/results/fairness.json" if extras_only else "bench/results/latest.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    print(f"\nwritten to {out}")


def run_at_ref(rev: str) -> int:
    """The same benchmark, on the pipeline, actors and workers of ``rev`` (a "before" figure).

    ``rev`` is checked out in a temporary git worktree; today's ``bench/`` is copied over its own
    (so both sides print the same figures) and its media cache is today's. The command line is
    this one's without ``--ref``; results go to ``bench/results/ref-<rev>.json`` here unless
    ``--out`` says otherwise. Needs a revision whose job API the bench uses (the hls work and later:
    earlier reports have no per-slot ``cpu_ms``, so CPU figures come out empty).
    """
    import shutil
    import subprocess
    import sys

    here = Path(__file__).resolve().parents[1]
    sha = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "--short", rev], check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = Path(f"/tmp/clipline-bench-ref-{sha}")
    remove = ["git", "-C", str(here), "worktree", "remove", "--force", str(tree)]
    subprocess.run(remove, capture_output=True)
    subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", str(tree), sha], check=True)
    try:
        shutil.rmtree(tree / "bench")
        skip = shutil.ignore_patterns("results", "__pycache__")
        shutil.copytree(here / "bench", tree / "bench", ignore=skip)
        (tree / ".cache").symlink_to(here / ".cache", target_is_directory=True)
        argv = [a for a in sys.argv[1:] if a != "--ref" and a != rev and not a.startswith("--ref=")]
        if not any(a.startswith("--out") for a in argv):
            argv += ["--out", str(here / "bench" / "results" / f"ref-{sha}.json")]
        env = {**__import__("os").environ, "PYTHONPATH": str(tree)}
        return subprocess.run([sys.executable, "-m", "bench.run", *argv], cwd=tree, env=env).returncode
    finally:
        subprocess.run(remove, capture_output=True)


def run_profiles(args: Any, job: Any, samples: Any, redis_url: str, results: dict[str, Any]) -> None:
    for name in args.profiles.split(","):
        shape = PROFILES[name]
        with LoopbackCDN(samples.root, api_key=job.API_KEY, index_id=job.INDEX_ID, **shape) as cdn:
            env = Env(RUN_ROOT / name, cdn.api_url, samples.media_dir, redis_url)
            env.root.mkdir(parents=True, exist_ok=True)
            prof: dict[str, Any] = {"shape": shape, "pipeline": {}}
            if args.cache:
                prof["clip_cache"] = {c: cache.rerender(env, cdn, int(c)) for c in args.caps.split(",")}
                print(f"[{name}] clip cache: {json.dumps(prof['clip_cache'])}", flush=True)
                results["profiles"][name] = prof
                continue
            for cap in [int(c) for c in args.caps.split(",")]:
                if args.repeat > 1 and not args.skip_baselines:
                    prof["pipeline"][cap] = paired_runs(env, cdn, cap, name, args.repeat)
                else:
                    prof["pipeline"][cap] = pipeline_run(env, cdn, cap, name)
                    if not args.skip_baselines:  # the bare script at the same cap, right after
                        bare = baseline_runs(cdn, cap, name, everything_first=False)["bare_parallel_ffmpeg"]
                        compare_with_bare(prof["pipeline"][cap], bare)
                print(f"[{name}] cap {cap}: {json.dumps(prof['pipeline'][cap])}", flush=True)
            if 1 in prof["pipeline"]:
                for fig in prof["pipeline"].values():
                    fig["speedup_vs_cap1"] = round(prof["pipeline"][1]["wall_s"] / fig["wall_s"], 2)
            if not args.skip_baselines:
                ref = prof["pipeline"].get(args.baseline_cap)
                prof["baselines"] = baseline_runs(cdn, args.baseline_cap, name, bare=ref is None)
                if ref:
                    prof["baselines"] = {
                        "bare_parallel_ffmpeg": {
                            "wall_s": ref["bare_wall_s"],
                            "cdn_bytes_hls": ref["bare_cdn_bytes_hls"],
                            "cpu_s_per_clip_mean": ref["bare_cpu_s_per_clip_mean"],
                            "cpu_s_per_clip_p95": ref["bare_cpu_s_per_clip_p95"],
                        },
                        **prof["baselines"],
                    }
                    for b in prof["baselines"].values():
                        b["pipeline_over_baseline"] = round(ref["wall_s"] / b["wall_s"], 2)
                        b["baseline_bytes_ratio"] = round(b["cdn_bytes_hls"] / ref["needed_segment_bytes"], 3)
                print(
                    f"[{name}] baselines at cap {args.baseline_cap}: {json.dumps(prof['baselines'])}",
                    flush=True,
                )
            if name == "network" and not args.skip_throughput:
                prof["throughput"] = throughput_and_fairness(env, cdn)
                print(f"[{name}] throughput: {json.dumps(prof['throughput'])}", flush=True)
                prof["live_config"] = live_config_reaction(env, cdn)
                print(f"[{name}] live config: {json.dumps(prof['live_config'])}", flush=True)
            results["profiles"][name] = prof


def print_table(results: dict[str, Any]) -> None:
    cols = (
        "cap",
        "wall_s",
        "speedup_vs_cap1",
        "bytes_ratio",
        "extract_p50_ms",
        "extract_p95_ms",
        "assembly_ms",
        "cpu_s_per_clip_mean",
        "cpu_s_per_clip_p95",
        "bare_cpu_s_per_clip_mean",
        "bare_cpu_s_per_clip_p95",
        "bare_wall_s",
        "clipline_over_bare_wall",
        "submit_to_first_clip_ms",
        "last_clip_to_assembly_ms",
        "peak_in_flight",
        "worker_rss_mb_total",
    )
    for name, prof in results["profiles"].items():
        print(f"\n== {name} profile {prof['shape']}")
        print(" | ".join(cols))
        for cap, fig in prof["pipeline"].items():
            print(" | ".join(str(cap if c == "cap" else fig.get(c)) for c in cols))
        for cap, fig in prof["pipeline"].items():
            if "pairs" in fig:
                print(
                    f"cap {cap}, {len(fig['pairs'])} pairs in turns: clipline/bare median "
                    f"{fig['clipline_over_bare_wall_median']}, range {fig['clipline_over_bare_wall_range']}"
                    " (the row above is the median pair)"
                )
                for pair in fig["pairs"]:
                    print(f"  {pair}")
        for bname, b in prof.get("baselines", {}).items():
            print(f"{bname}: {b}")
        for extra in ("throughput", "live_config", "clip_cache"):
            if extra in prof:
                print(f"{extra}: {prof[extra]}")
    if "storage" in results:
        st = results["storage"]
        print(f"\n== storage (60 lines, cap {st['cap']}; median of {len(st['runs']['file'])} runs)")
        for backend in ("file", "s3"):
            print(f"{backend}: {st[backend]}")
        print(f"per clip through S3: {st.get('per_clip')}")
        print(f"assembly S3 / file: {st['assembly_s3_over_file']} (target <= 2)")
        print(f"assembly replayed alone: {st.get('assembly_replay')}")


if __name__ == "__main__":
    main()
