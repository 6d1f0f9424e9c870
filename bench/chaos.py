"""Chaos soak: several jobs on a real stack while faults overlap, then every end-of-job check.

    .venv/bin/python -m bench.chaos --seed 1 --jobs 5 --minutes 3

A private RabbitMQ node and a private redis-server (tests/integration/private.py), one
``clipline worker`` per stage as the kill tests start them, the loopback CDN of the tests. Jobs of
8-12 lines are submitted at the start and during the faults; the second and fifth are cancelled and
retried. Besides those lines every job has 1-2 lines of ``v_local`` and 1-2 of ``v_gone`` at seeded
places, each video asked for by its ``hls_url`` or through the video API (seeded): sources of the
tests' sample set that have no HLS at all (the CDN and the video API answer 404 for the whole run,
whatever the schedule does), the first with a local copy in the media dir, the second without, as in
tests/integration/test_render.py; so each job ends COMPLETED_WITH_GAPS. For ``--minutes`` a seeded
schedule injects, overlapping: SIGKILL of a random stage's worker (restarted after a random delay,
as a supervisor would), restarts of the private Redis (state lost) and of the private RabbitMQ, CDN
faults (5xx bursts, stalled reads, dropped connections, video API 5xx) and a slow ffmpeg. A
supervisor thread also restarts a worker that exits by itself.

Then, per job: its final state and the time it took (against a bound computed from the settings),
the frame count of ``final.mp4`` against the timeline rule, ``report.json`` against the record, one
final clip event per slot, one ``job.finished`` line per job end and ``clipline_jobs_total`` never
above the ends; per dead line, in the job's last attempt (a retried job's second one; a retry after
COMPLETED_WITH_GAPS redoes only the slots without footage): the slot ended ``local`` (the local copy)
or ``placeholder`` (none) in the report, the record's status and clip_stats and its final clip event;
its clip (the report's count, and the clip file kept for a retry, counted) has the timeline rule's
frames; final.mp4 shows there the local copy's frames by the frame rule, or black; the slot's reason
and last error, its clip event's reason and its line in the report's missing footage name the video.
Globally: the render queues drained (nothing ready, nothing unacknowledged), dead letters listed, and
no worker or ffmpeg process left once the stack is stopped. The summary counts every job's slots by
outcome (ok / local / placeholder / failed). Exits 1 when a check fails. Figures only, no timing
asserts. The schedule is seeded; what the processes make of it is not (thread timing).
"""

from __future__ import annotations

import argparse
import json
import random
import re
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
#: Sources gone for good, in every job, and the outcome their slots must end in: the tests' sample set
#: (tests/integration/conftest.py SOURCES) has no HLS for either, so the CDN answers 404 for the playlist
#: and the video API ``video_not_found``, whatever the schedule does (``reset_faults`` cannot bring them
#: back); ``v_local`` has a local copy in the media dir, ``v_gone`` none.
DEAD = {"v_local": "local", "v_gone": "placeholder"}
#: The frame rate of the sample sources (the local copy's source frames, for its slots' frame check).
SOURCE_FPS = 30


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
    #: Slots whose source is dead -> the outcome they must end in (``DEAD``).
    dead: dict[int, str] = field(default_factory=dict)
    cancel_retry: bool = False
    retried: bool = False  # its retry was accepted: a second attempt must end
    submitted: float | None = None  # monotonic
    finals: list[tuple[str, float, int]] = field(default_factory=list)  # (status, s after submit, attempt)
    retried_at: float | None = None  # wall clock
    retry_settled: bool = False  # the retry command has returned and ``retried`` says what it did
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
        self.slots_ended = Counter[str]()  # report outcomes of every job's last attempt, once checked
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
            # The dead lines draw from a generator of their own: the seed's jobs (lines, submit times) and
            # fault schedules stay those of the runs before the dead lines were added.
            dead_rng = random.Random(f"{self.seed}-dead-{i}")
            n_dead = {vid: dead_rng.randint(1, 2) for vid in DEAD}
            request = small_request(self.stack, job_id, lines + sum(n_dead.values()))
            dead = self._kill_lines(request, n_dead, dead_rng)
            out.append(Job(job_id, request, at, dead=dead, cancel_retry=i in (1, 4)))
        return out

    def _kill_lines(
        self, request: dict[str, Any], n_dead: dict[str, int], rng: random.Random
    ) -> dict[int, str]:
        """Point ``n_dead[video]`` seeded lines of ``request`` at each dead video; slot -> outcome due.

        Each dead video of a job is asked for by its ``hls_url`` (the CDN's 404 for the playlist) or through
        the video API (its 404), by the seed. Windows lie inside the 10 s local copy, 0.6-1.5 s long (the
        1 s slot holds the last frame of a shorter one)."""
        from tests.integration.conftest import SOURCES, clip

        places = rng.sample(range(len(request["lines"])), sum(n_dead.values()))
        dead: dict[int, str] = {}
        for vid, count in n_dead.items():
            direct = rng.random() < 0.5
            length_s = next(s.duration_s for s in SOURCES if s.video_id == vid)
            for index in places[:count]:
                window = rng.randrange(600, 1500, 10)
                start = rng.randrange(0, int(length_s * 1000) - window - 500, 10)
                request["lines"][index]["clip"] = clip(
                    vid, start, start + window, self.cdn if direct else None
                )
                dead[index] = DEAD[vid]
            places = places[count:]
        return dict(sorted(dead.items()))

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
        try:
            self._cancel_and_retry(job)
        finally:
            job.retry_settled = True

    def _cancel_and_retry(self, job: Job) -> None:
        rng = random.Random(f"{self.seed}-{job.job_id.split('-')[1]}")  # the job's index
        time.sleep(rng.uniform(2, 8))
        res = self.cli("cancel", job.job_id)
        self.note(f"cancel {job.job_id}: exit {res.returncode} {res.stdout.strip()[-120:]}")
        time.sleep(rng.uniform(1, 5))
        job.retried_at = time.time()
        res = self.cli("retry", job.job_id)
        said = (res.stderr.strip().splitlines() or [""])[-1][-160:]
        self.note(f"retry {job.job_id}: exit {res.returncode} {said}")
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
                # until the retry command has returned (the job may look final meanwhile), then its attempt
                waiting_retry = job.cancel_retry and (not job.retry_settled or (job.retried and attempt < 2))
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
        for job in self.jobs:
            self.slots_ended.update(job.figures.get("outcomes", {}))
        print(f"slots (every job's last attempt): {self.slot_summary()}")
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

    def slot_summary(self) -> str:
        """How the slots of every job's last attempt ended, against the dead lines planned."""
        planned = Counter(o for job in self.jobs if "outcomes" in job.figures for o in job.dead.values())
        ended = ", ".join(f"{o} {self.slots_ended[o]}" for o in ("ok", "local", "placeholder", "failed"))
        dead = f"{planned['local']} with a local copy, {planned['placeholder']} without"
        return f"{ended} (dead lines in those jobs: {dead})"

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
        # clips: one final outcome per slot (for the retried job: since its retry, for the slots it redid)
        n = len(job.request["lines"])
        since = (job.retried_at or 0.0) if job.retried else 0.0  # a refused retry started nothing
        final_events = [
            e
            for e in self.stack.events("twelvelabs.video_clip")
            if e.get("job_id") == job.job_id and e.get("clip_status") in FINAL_CLIP and _ts(e) >= since
        ]
        finals = Counter(int(e["clip_task_id"].split(":")[1]) for e in final_events)
        job.figures["duplicate_final_clip_events"] = sum(finals.values()) - len(finals)
        job.figures["clip_starts"] = sum(
            1
            for e in self.stack.events("twelvelabs.video_clip")
            if e.get("job_id") == job.job_id and e.get("clip_status") == "started"
        )
        due = self.slots_due(job, n) if job.retried else list(range(n))
        if status in ("COMPLETED", "COMPLETED_WITH_GAPS") and set(due) - set(finals):
            p.append(f"slots without a final clip event: {sorted(set(due) - set(finals))}")
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
        # a retry keeps the results of the attempt before it (final.attempt-N.mp4, report.attempt-N.json)
        kept = re.compile(r"(final|report)\.attempt-\d+\.(mp4|json)")
        leftovers = [q.name for q in out.iterdir() if q.name not in results and not kept.fullmatch(q.name)]
        if leftovers:
            p.append(f"temporary files left in the output dir: {leftovers}")
        self.check_dead(job, report, final_events, out / "final.mp4", rec.status, stats)

    def slots_due(self, job: Job, n: int) -> list[int]:
        """The slots the retried job's second attempt renders, so logs a final outcome for: every slot
        after a cancelled (or failed) attempt; after one that ended COMPLETED_WITH_GAPS (the cancel came
        once it had ended) only those without their footage, as its kept report says (the others keep
        their clip, and their logged outcome, from that attempt)."""
        from pipeline.store import JobStore

        history = JobStore(self.stack.env["CLIPLINE_DATABASE_URL"]).history(job.job_id)
        before = [h for h in history if h.attempt == job.finals[-1][2] - 1]
        if not before or before[0].status != "COMPLETED_WITH_GAPS":
            return list(range(n))
        job.figures["retried_after"] = "COMPLETED_WITH_GAPS"
        try:
            kept = json.loads(Path(str(before[0].report_path)).read_text())
        except (OSError, ValueError) as exc:
            job.problems.append(f"the first attempt's kept report unreadable: {exc}")
            return []
        return [s["index"] for s in kept["slots"] if s["outcome"] != "ok"]

    def check_dead(
        self,
        job: Job,
        report: dict[str, Any],
        events: list[dict[str, Any]],
        final: Path,
        status: str,
        stats: dict[str, Any],
    ) -> None:
        """The slots whose source is dead (``job.dead``) of the job's last attempt.

        Each ended in its due outcome (the report, the record's status and clip_stats, its final clip
        events: ``events``); its clip has the timeline rule's frame count (the report, and the clip file
        kept for a retry, counted) and shows what it should in final.mp4 (the local copy's frames by the
        frame rule, or black); and the report says why, naming the video: the slot's reason and last
        error, its line in the missing footage."""
        from clipline.dev.samples import count_frames, read_frames
        from pipeline import files
        from pipeline.frame_rule import output_times
        from pipeline.models import ClipOutcome, parse_request
        from pipeline.settings import load_settings
        from pipeline.timeline import build_slots

        p = job.problems
        req = parse_request(job.request)
        slots = build_slots(req)
        settings = load_settings(self.stack.env)
        groups = {(g["video_id"], g["outcome"]): g for g in report["summary"]["missing_footage"]}
        logged: dict[int, list[dict[str, Any]]] = {}
        for e in events:
            logged.setdefault(int(e["clip_task_id"].split(":")[1]), []).append(e)
        due = Counter(job.dead.values())
        if status != "COMPLETED_WITH_GAPS" or any(
            (stats.get(ClipOutcome(o).public_name) or 0) < n for o, n in due.items()
        ):
            p.append(
                f"record {status}, clip_stats fallback_local {stats.get('fallback_local')}, placeholder "
                f"{stats.get('placeholder')}, for {due['local']} local and {due['placeholder']} dead slots"
            )
        try:
            shown: list[int] | None = read_frames(final)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            shown = None
            p.append(f"final.mp4's frames unreadable: {exc}")
        for index, want in job.dead.items():
            row, slot, line = report["slots"][index], slots[index], req.lines[index]
            vid = line.clip.video_id
            what = f"slot {index} ({vid}, gone {'with' if want == 'local' else 'without'} a local copy)"
            if row["outcome"] != want:
                p.append(f"{what} ended {row['outcome']}, not {want}")
            public = ClipOutcome(want).public_name
            said = [e.get("clip_status") for e in logged.get(index, [])]
            if said and set(said) != {public}:
                p.append(f"{what}: its final clip events say {said}, not {public}")
            for e in logged.get(index, []):
                if vid not in str(e.get("reason") or ""):
                    p.append(f"{what}: its {e.get('clip_status')} event's reason does not name {vid}")
            if (row["slot_frames"], row["measured_frames"]) != (slot.frames, slot.frames):
                p.append(
                    f"{what}: report slot_frames {row['slot_frames']}, measured {row['measured_frames']}; "
                    f"the timeline rule {slot.frames}"
                )
            clip_file = files.clip_path(settings, job.job_id, index)
            try:
                clip_frames = count_frames(clip_file)
            except Exception as exc:  # noqa: BLE001 - reported as a failed check
                p.append(f"{what}: its clip {clip_file.name} (kept for a retry) unreadable: {exc}")
            else:
                if clip_frames != slot.frames:
                    p.append(f"{what}: its clip has {clip_frames} frames, the timeline rule {slot.frames}")
            if shown is not None:
                got = shown[slot.start_frame : slot.start_frame + slot.frames]
                if want == "local":
                    window_ms = min(line.clip.duration_ms, -(-slot.frames * 1000 // slot.fps))
                    times = output_times(line.clip.start_ms, window_ms, slot.fps, slot.frames)
                    rule = [int(t * SOURCE_FPS) for t in times]
                    if got != rule:
                        p.append(f"{what}: final.mp4 shows source frames {got}, the frame rule {rule}")
                elif set(got) != {0}:  # black reads as code 0 throughout
                    p.append(f"{what}: final.mp4 does not show black there: {got}")
            for key in ("reason", "last_error"):
                if not row[key] or vid not in row[key]:
                    p.append(f"{what}: report {key} {row[key]!r} does not name the source")
            group = groups.get((vid, want))
            mine = [x for x in (group or {}).get("lines", []) if x["index"] == index]
            if not mine:
                p.append(f"{what}: not in the report's missing footage as {want}")
            elif vid not in str(mine[0].get("reason") or ""):
                p.append(f"{what}: its missing-footage reason {mine[0].get('reason')!r} does not name it")
        job.figures["dead"] = {
            o: [i for i, w in job.dead.items() if w == o] for o in sorted(set(job.dead.values()))
        }

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
    slots = f"; slots {chaos.slot_summary()}" if chaos is not None else ""
    print(f"\nseed {seed}: {'every check passed' if ok else 'CHECKS FAILED'}{slots}; logs in {base}")
    if ok and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
