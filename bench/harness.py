"""Running clipline for a benchmark: its own vhost, Redis db and directories; workers; a job; the figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.subprocesses import tied_to_caller
from tests.integration.redisdb import wipe

ROOT = Path(__file__).resolve().parents[1]
#: A vhost of this benchmark run's own (runs and test suites on one machine never see each other).
VHOST = f"clipline-bench-{os.getpid()}"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=False, capture_output=True, timeout=60)


def fresh_vhost() -> None:
    drop_vhost()
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")


def drop_vhost() -> None:
    rabbitmqctl("delete_vhost", VHOST)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def cpu_figures(cpu_s: list[float]) -> dict[str, float | None]:
    """CPU seconds per clip (ffmpeg/ffprobe children, user + system): mean and p95."""
    return {
        "cpu_s_per_clip_mean": round(sum(cpu_s) / len(cpu_s), 3) if cpu_s else None,
        "cpu_s_per_clip_p95": round(p, 3) if (p := percentile(cpu_s, 95)) is not None else None,
    }


def _own_cpu_ticks(pid: int) -> tuple[str, int] | None:
    """(command name, user + system clock ticks of the process itself, its children not counted)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
    return comm, int(rest[11]) + int(rest[12])  # fields 14 and 15: utime, stime


class RssSampler:
    """Peak resident memory of a process and all its descendants (the worker command and its children),
    and the CPU the long-lived Python processes of the tree spent themselves while sampled (``python_cpu_s``:
    Dramatiq, Redis and database calls, logging, segment joins; their ffmpeg/ffprobe children not counted,
    those are each slot's ``cpu_ms``)."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid, self.peak_total_kb, self.peak_one_kb = root_pid, 0, 0
        self._cpu_first: dict[int, int] = {}
        self._cpu_last: dict[int, int] = {}
        self._first_sample = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sample_cpu(self._tree(self._table()))

    @property
    def python_cpu_s(self) -> float:
        ticks = sum(last - self._cpu_first.get(pid, 0) for pid, last in self._cpu_last.items())
        return round(ticks / os.sysconf("SC_CLK_TCK"), 2)

    def _sample_cpu(self, tree: set[int]) -> None:
        for pid in tree:
            own = _own_cpu_ticks(pid)
            if own is None or own[0] in ("ffmpeg", "ffprobe"):
                continue
            self._cpu_first.setdefault(pid, own[1] if self._first_sample else 0)
            self._cpu_last[pid] = own[1]

    def _tree(self, table: dict[int, tuple[int, int]]) -> set[int]:
        tree, changed = {self.root_pid}, True
        while changed:
            grown = {pid for pid, (ppid, _) in table.items() if ppid in tree} | tree
            changed, tree = grown != tree, grown
        return tree

    @staticmethod
    def _table() -> dict[int, tuple[int, int]]:
        """pid -> (parent pid, RSS kB) for every process."""
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            rss = int(fields.get("VmRSS", "0 kB").split()[0])
            out[int(pid)] = (int(fields.get("PPid", "0").strip()), rss)
        return out

    def _loop(self) -> None:
        self._sample_cpu(self._tree(self._table()))
        self._first_sample = False
        while not self._stop.wait(0.25):
            table = self._table()
            tree = self._tree(table)
            self._sample_cpu(tree)
            rss = [table[p][1] for p in tree if p in table]
            self.peak_total_kb = max(self.peak_total_kb, sum(rss))
            self.peak_one_kb = max([self.peak_one_kb, *rss])


@dataclass
class Env:
    root: Path
    api_url: str
    media_dir: Path
    redis_url: str  # a db claimed for the run (tests/integration/redisdb.py)
    extra: dict[str, str] = field(default_factory=dict)
    run_id: int = 0  # each measurement gets a database file of its own

    def vars(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "TWELVELABS_", "RENDER_"))
        }
        env.update(
            {
                "CLIPLINE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
                "CLIPLINE_REDIS_URL": self.redis_url,
                "CLIPLINE_DATABASE_URL": f"sqlite:///{self.root / f'bench-{self.run_id}.db'}",
                "CLIPLINE_WORK_DIR": str(self.root / "work"),
                "CLIPLINE_OUTPUT_DIR": str(self.root / "output"),
                "CLIPLINE_MEDIA_DIR": str(self.media_dir),
                "TWELVELABS_API_URL": self.api_url,
                "TWELVELABS_API_KEY": "bench-key",
                "TWELVELABS_INDEX_ID": "bench-index",
                "CLIPLINE_SOURCE_CACHE_TTL_S": "0",
                "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",  # the loopback CDN and video API
                "CLIPLINE_LOG_LEVEL": "INFO",
                "PYTHONPATH": str(ROOT),
                **self.extra,
            }
        )
        return env


class Workers:
    """``clipline worker`` commands started for one measurement, logs kept for the figures."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.env.root / f"worker-{len(self.procs)}.log"
        fh = open(log, "wb")  # noqa: SIM115 - lives as long as the worker
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipline.cli", "worker", *args, "--metrics-port", "0"],
            env=self.env.vars(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=tied_to_caller(),  # a bench killed mid-run leaves no worker behind
        )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def wait_ready(self, consumers: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = sum(p.read_text(errors="replace").count("Worker process is ready") for p in self.logs)
            if ready >= consumers:
                return
            time.sleep(0.2)
        raise TimeoutError("workers did not start")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the workers' process trees have spent so far: each live process's
        own and that of its children it has waited for (every ffmpeg and ffprobe of a clip, a song, an
        assembly). Differences between two readings are what the work in between cost."""
        by_parent: dict[int, list[tuple[int, int]]] = {}
        own: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # ended meanwhile: its CPU is in its parent's children's figures
            fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
            ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
            by_parent.setdefault(int(fields[1]), []).append((int(entry), ticks))
            own[int(entry)] = ticks
        todo = [p.pid for p in self.procs]
        total = sum(own.get(pid, 0) for pid in todo)
        while todo:
            for pid, ticks in by_parent.get(todo.pop(), []):
                total += ticks
                todo.append(pid)
        return total / os.sysconf("SC_CLK_TCK")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for log in self.logs:
            for ln in log.read_text(errors="replace").splitlines():
                if ln.startswith("{"):
                    try:
                        out.append(json.loads(ln))
                    except json.JSONDecodeError:
                        pass
        return out


def reset_state(env: Env) -> None:
    wipe(env.redis_url)
    fresh_vhost()
    for sub in ("work", "output"):
        subprocess.run(["rm", "-rf", str(env.root / sub)], check=False)
    env.run_id += 1


def submit(env: Env, request: dict[str, Any]) -> None:
    os.environ.update({k: v for k, v in env.vars().items() if k.startswith(("CLIPLINE_", "TWELVELABS_"))})
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    from actors.sender import Sender
    from pipeline import jobs
    from pipeline.context import Context

    jobs.submit(Context(get_settings()), request, Sender(get_settings()).enqueue_plan)


def wait_final(env: Env, job_id: str, timeout_s: float = 600) -> Any:
    from pipeline.settings import get_settings
    from pipeline.store import JobStore

    store = JobStore(get_settings().database_url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job.finished_at is not None:
            return job
        time.sleep(0.05)
    raise TimeoutError(job_id)


def job_figures(job: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall time, latencies and clip figures of one finished job, from its record, report and logs."""
    created = (
        job.created_at.replace(tzinfo=UTC).timestamp()
        if job.created_at.tzinfo is None
        else (job.created_at.timestamp())
    )
    finished = (
        job.finished_at.replace(tzinfo=UTC).timestamp()
        if job.finished_at.tzinfo is None
        else (job.finished_at.timestamp())
    )
    mine = [e for e in events if e.get("job_id") == job.id]
    clip = [e for e in mine if e.get("event") == "twelvelabs.video_clip"]
    started = [_ts(e["ts"]) for e in clip if e["clip_status"] == "started"]
    finals = [
        _ts(e["ts"])
        for e in clip
        if e["clip_status"] in ("succeeded", "fallback_local", "placeholder", "failed")
    ]
    assemble = [_ts(e["ts"]) for e in mine if e.get("event") == "assemble.started"]
    report = json.loads(Path(job.report_path).read_text())
    extract = [
        s["extract_ms"] for s in report["slots"] if s["extract_ms"] is not None and s["outcome"] == "ok"
    ]
    stats = report["clip_stats"]
    cpu_s = [s["cpu_ms"] / 1000 for s in report["slots"] if s.get("cpu_ms") is not None]
    return {
        "status": job.status,
        "wall_s": round(finished - created, 2),
        "submit_to_first_clip_ms": round((min(started) - created) * 1000, 1) if started else None,
        "last_clip_to_assembly_ms": round((min(assemble) - max(finals)) * 1000, 1)
        if assemble and finals
        else None,
        "extract_p50_ms": percentile(extract, 50),
        "extract_p95_ms": percentile(extract, 95),
        "assembly_ms": stats.get("assembly_ms"),
        **cpu_figures(cpu_s),
        "peak_in_flight": stats.get("peak_concurrency"),
        "bytes_fetched": stats.get("bytes_fetched"),
        "outcomes": report["summary"]["ok"],
        "gaps": report["summary"]["local"] + report["summary"]["placeholder"],
        "frames": report["output"]["measured_frames"],
        "expected_frames": report["output"]["expected_frames"],
    }
