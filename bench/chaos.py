"""Chaos soak: several jobs on a real stack while faults overlap, then every end-of-job check.

    .venv/bin/python -m bench.chaos --seed 1 --jobs 5 --minutes 3

A private RabbitMQ node and a private redis-server (tests/integration/private.py), one
``clipline worker`` per stage as the kill tests start them, the loopback CDN of the tests. Jobs of
8-12 lines are submitted at the start and during the faults; the second and fifth are cancelled and
retried. For ``--minutes`` a seeded schedule injects, overlapping: SIGKILL of a random stage's worker
(restarted after a random delay, as a supervisor would), restarts of the private Redis (state lost)
and of the private RabbitMQ, CDN faults (5xx bursts, stalled reads, dropped connections, video API
5xx) and a slow ffmpeg. A supervisor thread also restarts a worker that exits by itself.

Then, per job: its final state and the time it took (against a bound computed from the settings),
the frame count of ``final.mp4`` against the timeline rule, ``report.json`` against the record, one
``job.finished`` line per job end and ``clipline_jobs_total`` never above the ends; globally: the
render queues drained (nothing ready, nothing unacknowledged), dead letters listed, and no worker or
ffmpeg process left once the stack is stopped. Exits 1 when a check fails. Figures only, no timing
asserts. The schedule is seeded; what the processes make of it is not (thread timing).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("plan", "clip", "fallback", "assemble")
FINAL = ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED", "CANCELLED")
#: Settings of the soak: short repairs and timeouts, so the bound on a job's end is minutes, not hours.
SOAK_ENV = {
    "CLIPLINE_RECONCILE_INTERVAL_S": "1",
    "CLIPLINE_RECONCILE_AFTER_S": "3",
    "CLIPLINE_FFMPEG_TIMEOUT_S": "30",
    "CLIPLINE_ASSEMBLE_TIMEOUT_S": "60",
    "CLIPLINE_HTTP_TIMEOUT_S": "3",
    "CLIPLINE_HTTP_DEADLINE_S": "10",
    "CLIPLINE_AUDIO_DEADLINE_S": "30",
}
SLOW_FFMPEG_S = 2.0
#: Every CDN request waits this long: jobs of ~10 lines take tens of seconds, long enough for faults.
CDN_LATENCY_MS = 150


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bound_s(env: dict[str, str]) -> float:
    """The longest a job may take to end once the faults stop, from the settings' deadlines.

    A clip: every attempt may run its ffmpeg to its timeout after its downloads ran to their deadline
    (plus the slow ffmpeg's wait), with the longest backoff between; the fallback once more; the
    reconciler's repairs, each after its stale time, before it gives up; an assembly to its timeout
    after the song's deadline; and a heartbeat TTL (10 s) for a dead holder's lock.
    """
    from pipeline.settings import Settings

    s = Settings()  # read from the environment set by main()
    attempts = 1 + s.clip_max_retries
    clip = attempts * (s.ffmpeg_timeout_s + s.http_deadline_s + SLOW_FFMPEG_S) + (
        attempts * s.retry_max_backoff_ms / 1000
    )
    fallback = s.ffmpeg_timeout_s + SLOW_FFMPEG_S
    repairs = (s.reconcile_max_repairs + 1) * (s.reconcile_after_s + s.reconcile_interval_s)
    assemble = s.audio_deadline_s + s.assemble_timeout_s + SLOW_FFMPEG_S
    return clip + fallback + repairs + assemble + 10


@dataclass
class Job:
    job_id: str
    request: dict[str, Any]
    submit_at_s: float  # into the fault window
    cancel_retry: bool = False
    retried: bool = False  # its retry was accepted: a second attempt must end
    submitted: float | None = None  # monotonic
    finals: list[tuple[str, float, int]] = field(default_factory=list)  # (status, s after submit, attempt)
    retried_at: float | None = None  # wall clock
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


class Chaos:
    def __init__(self, seed: int, jobs: int, minutes: float, base: Path) -> None:
        from clipline.dev.cdn import LoopbackCDN
        from clipline.dev.samples import build_sample_set
        from tests.integration.conftest import API_KEY, CACHE, INDEX_ID, SOURCES, Stack, stack_env
        from tests.integration.private import PrivateRabbit, PrivateRedis, free_port

        self.seed, self.rng, self.window_s = seed, random.Random(seed), minutes * 60
        self.base = base
        samples = build_sample_set(CACHE, SOURCES, song_s=40.0, width=320, height=180, fps=30, segment_s=2.0)
        # Children die with the *thread* that started them (PR_SET_PDEATHSIG, tests' tied_to_caller):
        # every worker and server is started from one of these threads, which outlive the stack.
        self.spawner = ThreadPoolExecutor(1, thread_name_prefix="chaos-workers")
        self.rabbit_spawner = ThreadPoolExecutor(1, thread_name_prefix="chaos-rabbit")
        self.redis_spawner = ThreadPoolExecutor(1, thread_name_prefix="chaos-redis")
        self.rabbit, self.redis = PrivateRabbit(base / "rabbit"), PrivateRedis(base / "redis")
        self.rabbit_spawner.submit(self.rabbit.start).result()
        self.redis_spawner.submit(self.redis.start).result()
        self.cdn = LoopbackCDN(samples.root, api_key=API_KEY, index_id=INDEX_ID).start()
        self.cdn.latency_ms = CDN_LATENCY_MS
        env = stack_env(base / "stack", "unused", self.redis.url, self.cdn, samples)
        env["CLIPLINE_BROKER_URL"] = self.rabbit.url
        env.update(SOAK_ENV)
        (base / "stack").mkdir()
        self.stack = Stack(env, base / "stack", self.cdn, samples)
        self.hold = base / "slow-ffmpeg-on"
        from tests.integration.faultkit import init_db, slow_ffmpeg

        env["CLIPLINE_FFMPEG"] = slow_ffmpeg(self.stack, SLOW_FFMPEG_S, only_while=self.hold)
        init_db(self.stack)
        self.ports = {stage: free_port() for stage in STAGES}
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()  # workers, killing
        self.killing: set[str] = set()  # stages killed on purpose and not yet restarted
        self.stop = threading.Event()  # the faults' window is over
        self.watch_until = float("inf")
        self.t0 = time.monotonic()
        self.events: list[str] = []
        self.metrics_seen: dict[int, Counter[str]] = {}  # worker pid -> last clipline_jobs_total scrape
        self.cli_logs: list[Path] = []
        self.jobs = self._plan_jobs(jobs)

    # -- stack ------------------------------------------------------------------------------------

    def note(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:7.1f}s {what}")
        log(what)

    def start_stage(self, stage: str) -> None:
        args = ("--stage", stage, "--concurrency", "2", "--metrics-port", str(self.ports[stage]))
        self.workers[stage] = self.spawner.submit(self.stack.start_workers, *args, name=stage).result()

    def supervise(self, stop: threading.Event) -> None:
        """Restart a worker that exited by itself (a supervisor's job), a second after it did."""
        while not stop.wait(1.0):
            with self.lock:
                for stage, proc in self.workers.items():
                    if stage not in self.killing and proc.poll() is not None:
                        self.note(f"supervisor: {stage} worker exited {proc.returncode}, restarted")
                        self.start_stage(stage)
            self.scrape()

    def scrape(self) -> None:
        import httpx

        for stage, proc in list(self.workers.items()):
            if proc.poll() is not None:
                continue
            try:
                text = httpx.get(f"http://127.0.0.1:{self.ports[stage]}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            seen: Counter[str] = Counter()
            for ln in text.splitlines():
                if ln.startswith("clipline_jobs_total{"):
                    status = ln.split('status="', 1)[1].split('"', 1)[0]
                    seen[status] += int(float(ln.split()[-1]))
            self.metrics_seen[proc.pid] = seen

    def cli(self, *args: str, tries: int = 20) -> subprocess.CompletedProcess[str]:
        """A CLI command, tried again while it exits 3 or more (the broker, Redis or the database away),
        as a person would; each failed try is noted with its last line."""
        path = self.base / f"cli-{len(self.cli_logs)}.log"
        self.cli_logs.append(path)
        path.write_text("")
        for n in range(tries):
            res = self.stack.cli(*args, timeout=120)
            with path.open("a") as fh:
                fh.write(f"# try {n + 1}: clipline {' '.join(args)}: exit {res.returncode}\n")
                fh.write(res.stdout + res.stderr)
            if res.returncode < 3:
                return res
            last = (res.stderr.strip().splitlines() or [""])[-1][:200]
            self.note(f"clipline {args[0]} try {n + 1}: exit {res.returncode}: {last}")
            time.sleep(2)
        return res

    # -- jobs -------------------------------------------------------------------------------------

    def _plan_jobs(self, n: int) -> list[Job]:
        from tests.integration.faultkit import small_request

        out = []
        for i in range(n):
            job_id = f"chaos{self.seed}-{i}-{secrets.token_hex(3)}"
            lines = self.rng.randint(8, 12)
            at = 0.0 if i < 2 else self.rng.uniform(5, self.window_s * 0.7)
            out.append(Job(job_id, small_request(self.stack, job_id, lines), at, cancel_retry=i in (1, 4)))
        return out

    def submitter(self) -> None:
        for job in sorted(self.jobs, key=lambda j: j.submit_at_s):
            self.stop.wait(max(0.0, job.submit_at_s - (time.monotonic() - self.t0)))
            path = self.base / f"{job.job_id}.json"
            path.write_text(json.dumps(job.request, ensure_ascii=False))
            job.submitted = time.monotonic()
            res = self.cli("submit", str(path))
            self.note(f"submitted {job.job_id} ({len(job.request['lines'])} lines): exit {res.returncode}")
            if res.returncode != 0:
                job.problems.append(f"submit failed: {res.stderr.strip()[-300:]}")
            if job.cancel_retry:
                threading.Thread(target=self.cancel_and_retry, args=(job,), daemon=True).start()

    def cancel_and_retry(self, job: Job) -> None:
        rng = random.Random(f"{self.seed}-{job.job_id.split('-')[1]}")  # the job's index
        time.sleep(rng.uniform(2, 8))
        res = self.cli("cancel", job.job_id)
        self.note(f"cancel {job.job_id}: exit {res.returncode} {res.stdout.strip()[-120:]}")
        time.sleep(rng.uniform(1, 5))
        job.retried_at = time.time()
        res = self.cli("retry", job.job_id)
        self.note(f"retry {job.job_id}: exit {res.returncode} {res.stdout.strip()[-120:]}")
        # Whether it started an attempt is the record's to say: a try that exited 3 with the broker down
        # has recorded it (the reconciler sends its plan), and the next try is then refused (exit 2)
        from pipeline.store import JobStore

        job.retried = JobStore(self.stack.env["CLIPLINE_DATABASE_URL"]).get(job.job_id).attempts >= 2

    def watch_jobs(self) -> None:
        """Record each job's final states (and when) until every job is final or ``watch_until`` passes."""
        from pipeline.store import JobNotFound, JobStore

        store = JobStore(self.stack.env["CLIPLINE_DATABASE_URL"])
        while time.monotonic() < self.watch_until:
            pending = False
            for job in self.jobs:
                if job.submitted is None:
                    pending = True
                    continue
                try:
                    rec = store.get(job.job_id)
                except JobNotFound:
                    pending = True
                    continue
                except Exception:  # noqa: BLE001 - SQLite busy for a moment: look again
                    pending = True
                    continue
                status, attempt = str(rec.status), int(rec.attempts)
                last = job.finals[-1] if job.finals else None
                if status in FINAL and (last is None or (last[0], last[2]) != (status, attempt)):
                    job.finals.append((status, round(time.monotonic() - job.submitted, 1), attempt))
                    self.note(f"{job.job_id} {status} (attempt {attempt})")
                waiting_retry = job.cancel_retry and (job.retried_at is None or (job.retried and attempt < 2))
                pending = pending or status not in FINAL or waiting_retry
            if not pending and self.stop.is_set():
                return
            time.sleep(0.5)

    # -- faults -----------------------------------------------------------------------------------

    def _faults_on(self, rng: random.Random, lo: float, hi: float) -> bool:
        """Wait a random while; False once the window is over."""
        return not self.stop.wait(rng.uniform(lo, hi)) and time.monotonic() - self.t0 < self.window_s

    def kills(self, rng: random.Random) -> None:
        from tests.integration.faultkit import sigkill_worker

        while self._faults_on(rng, 3, 12):
            stage = rng.choice(STAGES)
            with self.lock:
                proc = self.workers[stage]
                self.killing.add(stage)
            orphans = sigkill_worker(proc) if proc.poll() is None else []
            down = rng.uniform(0.5, 6)
            self.note(
                f"kill -9 {stage} (pid {proc.pid}), {len(orphans)} ffmpeg alive after; back in {down:.1f}s"
            )
            time.sleep(down)
            with self.lock:
                self.start_stage(stage)
                self.killing.discard(stage)

    def redis_restarts(self, rng: random.Random) -> None:
        while self._faults_on(rng, 10, 35):
            down = rng.uniform(0, 3)
            self.note(f"Redis restart (state lost), down {down:.1f}s")
            self.redis_spawner.submit(self.redis.restart, down).result()
            self.note("Redis back")

    def rabbit_restarts(self, rng: random.Random) -> None:
        while self._faults_on(rng, 15, 45):
            down = rng.uniform(0, 3)
            self.note(f"RabbitMQ restart, down {down:.1f}s")
            self.rabbit_spawner.submit(self.rabbit.restart, down).result()
            self.note("RabbitMQ back")

    def cdn_faults(self, rng: random.Random) -> None:
        while self._faults_on(rng, 2, 10):
            kind = rng.choice(("5xx", "stall", "drop", "api5xx"))
            prefix = rng.choice(("/hls/", "/hls/v_a/", "/hls/v_b/"))
            hold = rng.uniform(2, 8)
            if kind == "5xx":
                n = rng.randint(2, 10)
                self.cdn.fail_next(prefix, rng.choice((500, 502, 503)), n)
                what = f"{n} x 5xx on {prefix}"
            elif kind == "stall":
                self.cdn.stall(prefix, rng.uniform(3, 15))
                what = f"stalled reads on {prefix}"
            elif kind == "drop":
                self.cdn.stall(prefix, 0.05)
                what = f"dropped connections on {prefix}"
            else:
                n = rng.randint(1, 6)
                self.cdn.fail_next("/v1.3/", 503, n)
                what = f"{n} x 503 from the video API"
            self.note(f"CDN: {what} for {hold:.1f}s")
            self.stop.wait(hold)
            self.cdn.reset_faults()

    def slow_ffmpeg(self, rng: random.Random) -> None:
        while self._faults_on(rng, 3, 15):
            hold = rng.uniform(3, 12)
            self.note(f"ffmpeg starts {SLOW_FFMPEG_S:.0f}s late for {hold:.1f}s")
            self.hold.touch()
            self.stop.wait(hold)
            self.hold.unlink(missing_ok=True)

    # -- run --------------------------------------------------------------------------------------

    def run(self) -> bool:
        self.t0 = time.monotonic()
        for stage in STAGES:
            self.start_stage(stage)
        bound = bound_s(self.stack.env)
        log(f"seed {self.seed}: {len(self.jobs)} jobs, faults for {self.window_s:.0f}s, bound {bound:.0f}s")
        supervising = threading.Event()
        supervisor = threading.Thread(target=self.supervise, args=(supervising,), daemon=True)
        submitter = threading.Thread(target=self.submitter, daemon=True)
        faults = [
            threading.Thread(target=fault, args=(random.Random(self.seed * 100 + i),), daemon=True)
            for i, fault in enumerate(
                (self.kills, self.redis_restarts, self.rabbit_restarts, self.cdn_faults, self.slow_ffmpeg)
            )
        ]
        self.watch_until = float("inf")
        watcher = threading.Thread(target=self.watch_jobs, daemon=True)
        for t in (supervisor, submitter, *faults, watcher):
            t.start()
        time.sleep(self.window_s)
        self.stop.set()
        for t in faults:
            t.join(120)
        self.cdn.reset_faults()
        self.hold.unlink(missing_ok=True)
        faults_end = time.monotonic()
        self.note("faults stopped")
        submitter.join(300)
        self.watch_until = faults_end + bound
        watcher.join()
        waited = time.monotonic() - faults_end
        self.note(f"jobs final (or the bound passed) {waited:.0f}s after the faults stopped")
        self.scrape()
        ok = self.check(bound)
        supervising.set()
        supervisor.join(10)
        ok = self.check_teardown() and ok
        return ok

    # -- checks -----------------------------------------------------------------------------------

    def check(self, bound: float) -> bool:
        from tests.integration.faultkit import RENDER_QUEUES, render_queues_drained

        all_ok = True
        ended = Counter[str]()
        for job in self.jobs:
            self.check_job(job, bound)
            for status, _, _ in job.finals:
                ended[status] += 1
            all_ok = all_ok and not job.problems
        print("\n== jobs")
        for job in self.jobs:
            finals = ", ".join(f"{s} at {t:.0f}s (attempt {a})" for s, t, a in job.finals) or "NOT FINAL"
            lines = len(job.request["lines"])
            print(f"{job.job_id}: {lines} lines, submitted at {job.submit_at_s:.0f}s: {finals}")
            print(f"    {json.dumps(job.figures)}")
            for p in job.problems:
                print(f"    FAIL: {p}")
        print("\n== global")
        counted = Counter[str]()
        for seen in self.metrics_seen.values():
            counted.update(seen)
        print(f"job ends: {dict(ended)}; clipline_jobs_total (last scrape of each worker): {dict(counted)}")
        for status, n in counted.items():
            if n > ended[status]:
                all_ok = False
                print(f"FAIL: clipline_jobs_total{{status={status}}} = {n}, above the {ended[status]} ends")
        try:
            render_queues_drained(self.rabbit.url, self.rabbit.ctl, timeout=60)
            print("render queues: drained (nothing ready, nothing unacknowledged)")
        except AssertionError as exc:
            all_ok = False
            print(f"FAIL: {exc}")
        from tests.integration.faultkit import queue_counts

        dead = queue_counts(self.rabbit.url, tuple(f"{q}.XQ" for q in RENDER_QUEUES))
        print(f"dead letters: {dead}")
        if any(dead.values()):
            res = self.stack.cli("dlq", "list", "--json")
            print(res.stdout.strip()[-3000:])
        return all_ok

    def check_job(self, job: Job, bound: float) -> None:
        from clipline.dev.samples import count_frames
        from pipeline.models import parse_request
        from pipeline.store import JobStore
        from pipeline.timeline import total_frames
        from tests.integration.faultkit import FINAL_CLIP, job_events

        p = job.problems
        if not job.finals:
            p.append(f"no final state within {bound:.0f}s of the faults' end")
            return
        status, _, attempt = job.finals[-1]
        if job.retried and attempt < 2:
            p.append(f"the retried job never reached a final state of its second attempt (last {status})")
        job.figures["end_s_after_submit"] = job.finals[-1][1]
        rec = JobStore(self.stack.env["CLIPLINE_DATABASE_URL"]).get(job.job_id)
        finished = [e for e in job_events(self.stack, "job.finished", job.job_id)]
        cli_finished = [
            ln
            for path in self.cli_logs
            for ln in path.read_text().splitlines()
            if '"job.finished"' in ln and job.job_id in ln
        ]
        job.figures["job_finished_lines"] = len(finished) + len(cli_finished)
        if len(finished) + len(cli_finished) != len(job.finals):
            p.append(
                f"{len(finished)} job.finished lines in the workers' logs, {len(cli_finished)} in the CLI's "
                f"for {len(job.finals)} job ends: {[e.get('status') for e in finished]}"
            )
        # clips: one final outcome per slot (for the retried job: since its retry)
        n = len(job.request["lines"])
        since = (job.retried_at or 0.0) if job.retried else 0.0  # a refused retry started nothing
        finals = Counter(
            int(e["clip_task_id"].split(":")[1])
            for e in self.stack.events("twelvelabs.video_clip")
            if e.get("job_id") == job.job_id and e.get("clip_status") in FINAL_CLIP and _ts(e) >= since
        )
        job.figures["duplicate_final_clip_events"] = sum(finals.values()) - len(finals)
        job.figures["clip_starts"] = sum(
            1
            for e in self.stack.events("twelvelabs.video_clip")
            if e.get("job_id") == job.job_id and e.get("clip_status") == "started"
        )
        if status in ("COMPLETED", "COMPLETED_WITH_GAPS") and sorted(finals) != list(range(n)):
            p.append(f"slots without a final clip event: {sorted(set(range(n)) - set(finals))}")
        if status not in ("COMPLETED", "COMPLETED_WITH_GAPS"):
            job.figures["error"] = (rec.error_log or "")[-300:]
            if status == "FAILED":
                p.append(f"FAILED: {(rec.error_log or '')[-400:]}")
            return
        if not job.cancel_retry and any(v > 1 for v in finals.values()):
            p.append(f"a slot logged its final outcome more than once: {dict(finals)}")
        out = Path(self.stack.env["CLIPLINE_OUTPUT_DIR"]) / job.job_id
        expected = total_frames(parse_request(job.request))
        try:
            frames = count_frames(out / "final.mp4")
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            p.append(f"final.mp4 unreadable: {exc}")
            return
        job.figures["frames"] = f"{frames}/{expected}"
        if frames != expected:
            p.append(f"final.mp4 has {frames} frames, the timeline {expected}")
        report = json.loads((out / "report.json").read_text())
        outcomes = Counter(s["outcome"] for s in report["slots"])
        job.figures["outcomes"] = dict(outcomes)
        if [s["index"] for s in report["slots"]] != list(range(n)):
            p.append(f"report slots {[s['index'] for s in report['slots']]}")
        if report["status"] != rec.status:
            p.append(f"report status {report['status']}, record {rec.status}")
        want = "COMPLETED" if set(outcomes) == {"ok"} else "COMPLETED_WITH_GAPS"
        if rec.status != want:
            p.append(f"record {rec.status} with slot outcomes {dict(outcomes)}")
        stats = (rec.metrics or {}).get("render", {}).get("clip_stats", {})
        pairs = (("succeeded", "ok"), ("fallback_local", "local"), ("placeholder", "placeholder"))
        for key, outcome in pairs:
            want_n = outcomes.get(outcome, 0)
            if stats.get(key) != want_n or report["clip_stats"].get(key) != want_n:
                p.append(
                    f"{key}: record {stats.get(key)}, report clip_stats {report['clip_stats'].get(key)}, "
                    f"slots {outcomes.get(outcome, 0)}"
                )
        summary = report["summary"]
        if (summary["ok"], summary["local"], summary["placeholder"]) != (
            outcomes.get("ok", 0),
            outcomes.get("local", 0),
            outcomes.get("placeholder", 0),
        ):
            p.append(f"report summary {summary['ok']}/{summary['local']}/{summary['placeholder']} vs slots")
        if report["output"]["measured_frames"] != expected:
            p.append(f"report measured_frames {report['output']['measured_frames']}, expected {expected}")
        bad = [s["index"] for s in report["slots"] if s["measured_frames"] != s["slot_frames"]]
        if bad:
            p.append(f"slots whose measured frames differ from their slot: {bad}")
        results = ("final.mp4", "report.json", "poster.jpg")
        leftovers = [q.name for q in out.iterdir() if q.name not in results]
        if leftovers:
            p.append(f"temporary files left in the output dir: {leftovers}")

    def check_teardown(self) -> bool:
        """Stop the stack; then no process of it (worker, dramatiq, ffmpeg) may be left."""
        self.stack.stop_workers()
        self.cdn.stop()
        self.rabbit.close()
        self.redis.close()
        time.sleep(SLOW_FFMPEG_S + 1)  # a slow ffmpeg's shell between its wait and its exec
        left = leftover_processes(str(self.base))
        print(f"processes left after the stack stopped: {left or 'none'}")
        print("\n== faults injected")
        for e in self.events:
            print("  " + e)
        return not left


def _ts(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


def leftover_processes(marker: str) -> list[str]:
    """Processes whose environment or command line names ``marker`` (the soak's directory)."""
    import os

    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (marker.encode() in env or marker.encode() in cmd):
            argv = cmd.replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{entry}: {argv[:160]}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--jobs", type=int, default=5, help="2 or more; the second and fifth are cancelled and retried"
    )
    p.add_argument("--minutes", type=float, default=3.0, help="how long the faults go on")
    p.add_argument("--keep", action="store_true", help="keep the soak's directory (logs) even when it passes")
    args = p.parse_args(argv)
    if args.jobs < 2:
        p.error("--jobs must be 2 or more (the second is cancelled and retried)")
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)

    from pipeline import logs

    logs.configure("WARNING", json_output=False)
    base = Path(tempfile.mkdtemp(prefix=f"clipline-chaos-{seed}-"))
    import os

    os.environ.update(SOAK_ENV)  # bound_s reads the soak's settings
    chaos = None
    ok = False
    try:
        chaos = Chaos(seed, args.jobs, args.minutes, base)
        ok = chaos.run()
    finally:
        if chaos is not None:
            chaos.stack.stop_workers()
            chaos.cdn.stop()
            chaos.rabbit.close()
            chaos.redis.close()
            chaos.spawner.shutdown()
            chaos.rabbit_spawner.shutdown()
            chaos.redis_spawner.shutdown()
    print(f"\nseed {seed}: {'every check passed' if ok else 'CHECKS FAILED'}; logs in {base}")
    if ok and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
