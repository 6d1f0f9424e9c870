"""Real services for integration tests: RabbitMQ (a vhost per run), Redis (a db per run), ffmpeg media,
a loopback CDN + video API, and `clipline worker` processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import SampleSet, SourceSpec, build_sample_set
from pipeline.subprocesses import tied_to_caller

from .pg import fresh_database
from .redisdb import claimed_db

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CLIPLINE_TEST_CACHE", ROOT / ".cache" / "test-media"))
API_KEY, INDEX_ID = "test-key", "test-index"

#: Sources of the test job: two HLS videos, one only on local disk, one gone everywhere.
SOURCES = [
    SourceSpec("v_a", duration_s=20.0),
    SourceSpec("v_b", duration_s=12.0),
    SourceSpec("v_local", duration_s=10.0, hls=False, local=True),
    SourceSpec("v_gone", duration_s=10.0, hls=False, local=False),
]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def private_vhost(label: str) -> Iterator[str]:
    """A RabbitMQ vhost of its own, ``clipline-{label}-{random}``, open to guest; deleted afterwards."""
    name = f"clipline-{label}-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    with private_vhost("test") as name:
        yield name


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """An empty Redis db claimed for this run (never one that another run or program is using)."""
    with claimed_db() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped afterwards (or a skip naming how)."""
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def samples() -> SampleSet:
    return build_sample_set(CACHE, SOURCES, song_s=40.0, width=320, height=180, fps=30, segment_s=2.0)


@pytest.fixture(scope="session")
def cdn(samples: SampleSet) -> Iterator[LoopbackCDN]:
    with LoopbackCDN(samples.root, api_key=API_KEY, index_id=INDEX_ID) as server:
        yield server


@dataclass
class Stack:
    """Environment of one test's pipeline: its own dirs and database, the run's vhost and Redis db."""

    env: dict[str, str]
    tmp: Path
    cdn: LoopbackCDN
    samples: SampleSet
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start_workers(self, *args: str, name: str = "worker") -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        fh = open(log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipline.cli", "worker", *args],
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=tied_to_caller(),  # a test run killed mid-test leaves no worker behind
        )
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def stop_workers(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()

    def cli(
        self, *args: str, input_json: Any = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clipline.cli", *args],
            env=self.env,
            text=True,
            capture_output=True,
            input=json.dumps(input_json) if input_json is not None else None,
            timeout=timeout,
        )

    def actor_errors(self) -> list[str]:
        """Log lines where an actor raised (Dramatiq logs these as errors or retries)."""
        bad = []
        for log in self.logs:
            for ln in log.read_text(errors="replace").splitlines():
                if ln.startswith("{") and (
                    '"level": "error"' in ln or "Traceback" in ln or '"Retrying message' in ln
                ):
                    bad.append(ln)
        return bad

    def job_finished(self, job_id: str, timeout: float = 10) -> list[dict[str, Any]]:
        """The job's ``job.finished`` lines, once there is one (or ``timeout`` passed): the line is
        written just after the job's final state is (by the one writer whose compare-and-set ended
        it), so a test that saw the final state may read the log a moment before the line is in it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events("job.finished") if e.get("job_id") == job_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def events(self, event: str) -> list[dict[str, Any]]:
        out = []
        for log in self.logs:
            for ln in log.read_text(errors="replace").splitlines():
                if ln.startswith("{") and f'"{event}"' in ln:
                    rec = json.loads(ln)
                    if rec.get("event") == event:
                        out.append(rec)
        return out


def stack_env(tmp: Path, vhost: str, redis_url: str, cdn: LoopbackCDN, samples: SampleSet) -> dict[str, str]:
    """The environment of a pipeline on this run's vhost and Redis db, with its own dirs and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "TWELVELABS_", "RENDER_"))}
    env.update(
        {
            "CLIPLINE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            "CLIPLINE_REDIS_URL": redis_url,
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp}/clipline.db",
            "CLIPLINE_WORK_DIR": str(tmp / "work"),
            "CLIPLINE_OUTPUT_DIR": str(tmp / "output"),
            "CLIPLINE_MEDIA_DIR": str(samples.media_dir),
            "TWELVELABS_API_URL": cdn.api_url,
            "TWELVELABS_API_KEY": API_KEY,
            "TWELVELABS_INDEX_ID": INDEX_ID,
            "CLIPLINE_RETRY_MIN_BACKOFF_MS": "100",
            "CLIPLINE_RETRY_MAX_BACKOFF_MS": "400",
            "CLIPLINE_HTTP_TIMEOUT_S": "5",
            "CLIPLINE_SOURCE_CACHE_TTL_S": "0",
            # The loopback CDN, video API and callback receivers are on 127.0.0.1.
            "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",
            # No fixed port: tests that scrape metrics choose a free one.
            "CLIPLINE_METRICS_PORT": "0",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@pytest.fixture
def stack(
    tmp_path: Path, vhost: str, redis_url: str, cdn: LoopbackCDN, samples: SampleSet
) -> Iterator[Stack]:
    env = stack_env(tmp_path, vhost, redis_url, cdn, samples)
    s = Stack(env, tmp_path, cdn, samples)
    yield s
    s.stop_workers()
    cdn.reset_faults()
    purge_queues(env["CLIPLINE_BROKER_URL"])


def purge_queues(broker_url: str) -> None:
    """Empty the stages' queues (with their delay and dead-letter queues) of the run's vhost: messages a
    test left behind (a cancelled job's clips, workers stopped mid-job) are never consumed by the next
    test's workers, which would not find their job."""
    import pika

    from actors.names import QUEUE, dead_letter_queue, delay_queue

    try:
        conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    except (pika.exceptions.AMQPError, OSError, ValueError):
        # a private broker the test stopped or is restarting (pika raises a ValueError of its own for a
        # socket refused mid-connect), a vhost it removed: nothing left to empty there
        return
    try:
        for stage, queue in QUEUE.items():
            for name in (queue, delay_queue(stage), dead_letter_queue(stage)):
                ch = conn.channel()
                try:
                    ch.queue_purge(name)
                    ch.close()
                except pika.exceptions.ChannelClosedByBroker:  # not declared in this vhost yet
                    pass
    finally:
        if conn.is_open:
            conn.close()


def new_job_id(prefix: str = "it") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def clip(video_id: str, start_ms: int, end_ms: int, cdn: LoopbackCDN | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"video_id": video_id, "start_ms": start_ms, "end_ms": end_ms}
    if cdn is not None:
        c["hls_url"] = cdn.hls_url(video_id)
    return c


def build_request(
    job_id: str,
    cdn: LoopbackCDN,
    picks: list[tuple[str, int, int, bool]],
    *,
    line_ms: Callable[[int], int],
    audio: bool = True,
) -> dict[str, Any]:
    """picks: (video_id, source start ms, source end ms, give hls_url) per line; line i lasts line_ms(i)."""
    lines, t = [], 0
    for i, (vid, cs, ce, direct) in enumerate(picks):
        d = line_ms(i)
        lines.append(
            {
                "text": f"第{i + 1}句 line {i + 1}",
                "start_ms": t,
                "end_ms": t + d,
                "clip": clip(vid, cs, ce, cdn if direct else None),
            }
        )
        t += d
    req: dict[str, Any] = {
        "job_id": job_id,
        "mix_request_id": f"req-{job_id}",
        "trace_id": secrets.token_hex(8),
        "output": {"width": 320, "height": 180, "fps": 30},
        "lines": lines,
    }
    if audio:
        req["audio"] = {"url": cdn.url("audio/song.m4a")}
    return req
