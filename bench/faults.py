"""Fault injection, repeated: each kill/restart scenario N times at random points, measured.

    .venv/bin/python -m bench.faults --runs 5
    .venv/bin/python -m bench.faults --runs 3 --faults clip-kill,assembler-kill --seed 7

Each run is the integration test's scenario (tests/integration/test_kills.py,
test_restarts.py) with its end-of-job checks (frame count, every slot once,
one assembly, queues drained, no ffmpeg left): a run that breaks one is
counted as failed with the reason. Needs RabbitMQ and Redis on localhost,
ffmpeg, and root is not required. Figures are what the runs measured.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

FAULTS = {
    "clip-kill": "SIGKILL of the clip worker (command + dramatiq processes) after a random number of "
    "clips, with clips in flight; a new clip worker started",
    "assembler-kill": "SIGKILL of the assemble worker 0-1.9 s after `assemble.started`, its ffmpeg and "
    "ffprobe each starting 1 s late (before, during or after its concat); a new one started",
    "rabbit-restart": "private RabbitMQ node stopped (about 1.5 s; ffmpeg starts held meanwhile) and "
    "started again (about 5 s) after a random number of clips",
    "redis-restart": "private redis-server (no persistence) killed and started: every key lost, "
    "after a random number of clips",
}


def one_run(fault: str, stack: Any, rng: random.Random) -> dict[str, Any]:
    from tests.integration import faultkit, test_kills, test_restarts
    from tests.integration.private import private_rabbit, private_redis

    # Measure jobs that end with gaps too (counted in the table), instead of failing the run.
    faultkit.ACCEPTED_STATUSES = ("COMPLETED", "COMPLETED_WITH_GAPS")

    if fault == "clip-kill":
        k = test_kills.kill_clip_worker_mid_job(stack, rng)
        return {"outcome": k.outcome, "point": k.kill_point, "recovery_s": k.recovery_s}
    if fault == "assembler-kill":
        k = test_kills.kill_assembler_mid_assembly(stack, rng)
        return {"outcome": k.outcome, "point": k.kill_point, "recovery_s": k.recovery_s}
    if fault not in ("rabbit-restart", "redis-restart"):
        raise ValueError(fault)
    rabbit = fault == "rabbit-restart"
    private = private_rabbit(stack.tmp / "rabbit") if rabbit else private_redis(stack.tmp / "redis")
    with private as server:
        stack.env["CLIPLINE_BROKER_URL" if rabbit else "CLIPLINE_REDIS_URL"] = server.url
        try:
            r = test_restarts.run_with_restart(stack, server, rng)
        finally:
            stack.stop_workers()
    return {"outcome": r.outcome, "point": r.restart_point, "recovery_s": r.recovery_s, "phases": r.phases}


def run_fault(fault: str, runs: int, rng: random.Random, make_stack: Callable[[], Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for i in range(runs):
        stack = make_stack()
        started = time.monotonic()
        try:
            got = one_run(fault, stack, rng)
            o = got["outcome"]
            rows.append(
                {
                    "ok": True,
                    "point": got["point"],
                    "recovery_s": round(got["recovery_s"], 2),
                    "clips_lost": o.clips_lost,
                    "duplicate_clip_runs": o.duplicate_clip_runs,
                    "duplicate_finals": o.duplicate_finals,
                    "assemblies": o.assemblies,
                    "assembly_starts": o.assembly_starts,
                    "gaps": o.gaps,
                    "status": o.status,
                    **({"phases_s": got["phases"]} if "phases" in got else {}),
                }
            )
        except Exception as exc:  # noqa: BLE001 - a failed run is a result, recorded with its reason
            rows.append({"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        finally:
            stack.stop_workers()
            stack.cdn.reset_faults()
            stack.cdn.latency_ms = 0
        print(f"  {fault} run {i + 1}/{runs}: {rows[-1]} ({time.monotonic() - started:.0f} s)", flush=True)
    return {"fault": fault, "how": FAULTS[fault], "runs": rows}


def summarize(result: dict[str, Any]) -> dict[str, str]:
    rows = result["runs"]
    ok = [r for r in rows if r["ok"]]

    def spread(key: str) -> str:
        vals = [r[key] for r in ok]
        if not vals:
            return "-"
        return f"{sum(vals)} total (max {max(vals)} per run)"

    rec = [r["recovery_s"] for r in ok]
    keys = list(dict.fromkeys(k for r in ok for k in r.get("phases_s", {})))
    phase_medians = ", ".join(
        f"{k} {statistics.median(r['phases_s'][k] for r in ok if k in r.get('phases_s', {})):.1f} s"
        for k in keys
    )
    return {
        "fault": result["fault"],
        "how": result["how"],
        "runs": f"{len(rows)} ({len(ok)} passed every check)",
        "clips lost": str(sum(r["clips_lost"] for r in ok)) if ok else "-",
        "duplicate clip executions": spread("duplicate_clip_runs"),
        "duplicate final outcomes": spread("duplicate_finals"),
        "assemblies per job": ",".join(str(r["assemblies"]) for r in ok) or "-",
        "slots degraded to placeholder/local": str(sum(r["gaps"] for r in ok)) if ok else "-",
        "recovery (kill -> job final)": (
            f"median {statistics.median(rec):.1f} s, max {max(rec):.1f} s" if rec else "-"
        ),
        "kill points": "; ".join(r["point"] for r in ok),
        "failures": "; ".join(r["error"] for r in rows if not r["ok"]) or "none",
        "phases": phase_medians or "-",
    }


def markdown(summaries: list[dict[str, str]]) -> str:
    cols = [
        "fault",
        "runs",
        "clips lost",
        "duplicate clip executions",
        "duplicate final outcomes",
        "assemblies per job",
        "slots degraded to placeholder/local",
        "recovery (kill -> job final)",
    ]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in summaries:
        out.append("| " + " | ".join(s[c] for c in cols) + " |")
    out.append("")
    for s in summaries:
        out.append(f"- **{s['fault']}**: {s['how']}. Points: {s['kill points']}. Failures: {s['failures']}.")
        if s["phases"] != "-":
            out.append(f"  Median time from the restart's start to: {s['phases']}.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    args = p.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        p.error(f"unknown fault(s) {unknown}")
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    rng = random.Random(seed)

    from clipline.dev.cdn import LoopbackCDN
    from clipline.dev.samples import build_sample_set
    from pipeline import logs
    from tests.integration.conftest import API_KEY, CACHE, INDEX_ID, SOURCES, Stack, stack_env
    from tests.integration.redisdb import claimed_db

    logs.configure("WARNING", json_output=False)  # this process's own ffprobe calls stay quiet

    samples = build_sample_set(CACHE, SOURCES, song_s=40.0, width=320, height=180, fps=30, segment_s=2.0)
    vhost = f"clipline-faults-{secrets.token_hex(4)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    base = Path(tempfile.mkdtemp(prefix="clipline-faults-"))
    results = []
    try:
        with (
            claimed_db("bench.faults") as redis_url,
            LoopbackCDN(samples.root, api_key=API_KEY, index_id=INDEX_ID) as cdn,
        ):

            def make_stack() -> Any:
                tmp = Path(tempfile.mkdtemp(dir=base))
                return Stack(stack_env(tmp, vhost, redis_url, cdn, samples), tmp, cdn, samples)

            for fault in faults:
                print(f"{fault}: {args.runs} run(s) (seed {seed})", flush=True)
                results.append(run_fault(fault, args.runs, rng, make_stack))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
    summaries = [summarize(r) for r in results]
    print()
    print(markdown(summaries))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"seed": seed, "results": results, "summary": summaries}, indent=2))
    print(f"\nraw runs: {args.json}")
    return 0 if all(r["ok"] for res in results for r in res["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
