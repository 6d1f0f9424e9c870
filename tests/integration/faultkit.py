"""Shared by the fault tests and ``bench/faults.py``: small jobs, hard kills, and the end-of-job checks.

Every fault scenario ends with the same checks (``check_job``): the job final
and whole, the right frame count, every slot exactly once in the report and in
the logs, exactly one assembly, the render queues drained, no ffmpeg left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from clipline.dev.samples import count_frames
from pipeline.models import parse_request
from pipeline.timeline import total_frames

from .conftest import Stack, build_request

FINAL_CLIP = ("succeeded", "fallback_local", "placeholder", "failed")
FINAL_JOB = ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED", "CANCELLED")
RENDER_QUEUES = ("render.plan", "render.clip", "render.fallback", "render.assemble")
#: Final statuses check_job accepts unless told otherwise. The jobs' sources are all healthy, so a
#: fault that turned a clip into a placeholder fails a test; bench/faults.py widens this to count them.
ACCEPTED_STATUSES: tuple[str, ...] = ("COMPLETED",)


def small_request(stack: Stack, job_id: str, lines: int = 10, *, audio: bool = True) -> dict[str, Any]:
    """``lines`` lines over the two CDN videos (one via the video API), 1 s each, 320x180 at 30 fps."""
    picks = [
        ("v_a", 700 * i + 100, 700 * i + 1100, True) if i % 3 else ("v_b", 500 * i, 500 * i + 1000, False)
        for i in range(lines)
    ]
    return build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=audio)


def init_db(stack: Stack) -> None:
    """Create the job tables before any worker or CLI process touches the fresh SQLite file.

    Processes opening a fresh database together are safe (``pipeline.schema`` creates it under a lock);
    creating it first keeps these tests about their own faults.
    """
    from pipeline.store import JobStore

    JobStore(stack.env["CLIPLINE_DATABASE_URL"])


def submit(stack: Stack, request: dict[str, Any]) -> None:
    path = stack.tmp / f"{request['job_id']}.json"
    path.write_text(json.dumps(request, ensure_ascii=False))
    res = stack.cli("submit", str(path), timeout=120)
    assert res.returncode == 0, res.stderr


def wait_final(stack: Stack, job_id: str, timeout: float = 180) -> dict[str, Any]:
    res = stack.cli("status", job_id, "--watch", "--json", timeout=timeout)
    assert res.stdout.strip(), res.stderr
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 120, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def clip_events(stack: Stack, job_id: str, statuses: tuple[str, ...]) -> Counter[int]:
    """Clip index -> how many clip events of these statuses the job logged."""
    return Counter(
        int(e["clip_task_id"].split(":")[1])
        for e in stack.events("twelvelabs.video_clip")
        if e.get("job_id") == job_id and e.get("clip_status") in statuses
    )


def job_events(stack: Stack, event: str, job_id: str) -> list[dict[str, Any]]:
    return [e for e in stack.events(event) if e.get("job_id") == job_id]


# -- hard kills -------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _comm(pid: int) -> str:
    """The process's name; "" for one that is gone or a zombie (dead, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()[0]
    return "" if state == "Z" else name


def sigkill_worker(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL a ``clipline worker`` as a crash would: the command and every dramatiq process under it.

    The ffmpeg children are not killed by us (they run in their own sessions); the
    pids of those alive just after the kill are returned, to check what becomes of them.
    """
    tree = _descendants(proc.pid)
    workers = [p for p in tree if _comm(p) not in ("ffmpeg", "")]
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
    time.sleep(0.3)
    return [p for p in tree if _comm(p) == "ffmpeg"]


def slow_ffmpeg(stack: Stack, delay_s: float, *, only_while: Path | None = None) -> str:
    """An ffmpeg (and the ffprobe beside it) that sleeps ``delay_s`` before it runs, always or only
    while the file ``only_while`` exists: it holds a stage back so a fault lands while it works.
    Returns the path for CLIPLINE_FFMPEG."""
    bin_dir = stack.tmp / "slow-ffmpeg"
    bin_dir.mkdir(exist_ok=True)
    wait = f"sleep {delay_s}" if only_while is None else f"[ -e '{only_while}' ] && sleep {delay_s}"
    for name in ("ffmpeg", "ffprobe"):
        real = shutil.which(name)
        assert real, f"{name} not found"
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\n{wait}\nexec {real} "$@"\n')
        script.chmod(0o755)
    return str(bin_dir / "ffmpeg")


def ffmpeg_pids(pattern: str) -> list[int]:
    """Running ffmpeg processes whose command line contains ``pattern`` (a job id)."""
    res = subprocess.run(["pgrep", "-f", f"ffmpeg.*{pattern}"], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split() if int(p) != os.getpid()]


# -- queues -----------------------------------------------------------------------------------------


def queue_counts(broker_url: str, queues: tuple[str, ...]) -> dict[str, int]:
    """Ready messages per queue (0 for a queue that does not exist)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    counts: dict[str, int] = {}
    try:
        for q in queues:
            ch = conn.channel()
            try:
                counts[q] = int(ch.queue_declare(q, passive=True).method.message_count)
                ch.close()
            except pika.exceptions.ChannelClosedByBroker:
                counts[q] = 0
    finally:
        if conn.is_open:
            conn.close()
    return counts


def unacked(vhost_ctl: Callable[..., str], vhost: str) -> dict[str, tuple[int, int]]:
    """queue -> (ready, unacknowledged), through ``rabbitmqctl list_queues``."""
    out = vhost_ctl("list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged")
    depths: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            depths[parts[0]] = (int(parts[1]), int(parts[2]))
    return depths


def shared_ctl(*args: str) -> str:
    res = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True)
    return res.stdout


def vhost_of(broker_url: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(broker_url).path.lstrip("/")) or "/"


def render_queues_drained(
    broker_url: str, ctl: Callable[..., str] = shared_ctl, timeout: float = 30
) -> dict[str, tuple[int, int]]:
    """Wait until no render queue (nor its delay queue) holds a ready or unacknowledged message."""
    vhost = vhost_of(broker_url)
    watched = {*RENDER_QUEUES, *(f"{q}.DQ" for q in RENDER_QUEUES)}
    last: dict[str, tuple[int, int]] = {}

    def drained() -> bool:
        nonlocal last
        last = {q: d for q, d in unacked(ctl, vhost).items() if q in watched and d != (0, 0)}
        return not last

    try:
        wait_for("render queues to drain", drained, timeout=timeout, every=0.5)
    except AssertionError:
        raise AssertionError(f"render queues not drained: {last}") from None
    return last


def dead_letters(broker_url: str) -> dict[str, int]:
    return queue_counts(broker_url, tuple(f"{q}.XQ" for q in RENDER_QUEUES))


# -- the end-of-job checks --------------------------------------------------------------------------


@dataclass
class Outcome:
    job_id: str
    status: str
    frames: int
    slots: int
    clips_lost: int
    duplicate_clip_runs: int  # clip executions (started) beyond one per slot
    duplicate_finals: int  # final clip events beyond one per slot
    assemblies: int  # job.finished events
    gaps: int  # slots whose footage is local or a placeholder (every source is healthy in these jobs)
    assembly_starts: int
    extra: dict[str, Any] = field(default_factory=dict)


def check_job(
    stack: Stack,
    request: dict[str, Any],
    result: dict[str, Any],
    *,
    ctl: Callable[..., str] = shared_ctl,
    ok_statuses: tuple[str, ...] | None = None,
) -> Outcome:
    """Assert every invariant of a job that survived a fault; returns what was measured."""
    job_id, n = request["job_id"], len(request["lines"])
    assert result["status"] in (ok_statuses or ACCEPTED_STATUSES), result
    final = Path(result["output_path"])
    expected = total_frames(parse_request(request))
    frames = count_frames(final)
    assert frames == expected, (frames, expected)
    report = json.loads(Path(result["report_path"]).read_text())
    assert [s["index"] for s in report["slots"]] == list(range(n)), report["slots"]
    assert all(s["measured_frames"] == s["slot_frames"] for s in report["slots"])
    results = ("final.mp4", "report.json", "poster.jpg")
    leftovers = [p.name for p in final.parent.iterdir() if p.name not in results]
    assert leftovers == [], f"temporary files left in the output dir: {leftovers}"

    finals = clip_events(stack, job_id, FINAL_CLIP)
    started = clip_events(stack, job_id, ("started",))
    assert sorted(finals) == list(range(n)), finals
    assert set(finals.values()) == {1}, f"a slot logged its final outcome twice: {finals}"
    finished = stack.job_finished(job_id)
    assert len(finished) == 1, finished

    render_queues_drained(stack.env["CLIPLINE_BROKER_URL"], ctl)
    wait_for("the job's ffmpeg processes to end", lambda: not ffmpeg_pids(job_id), timeout=10, every=0.2)
    work = Path(stack.env["CLIPLINE_WORK_DIR"]) / job_id
    if result["status"] == "COMPLETED":
        assert not work.exists(), sorted(str(p) for p in work.rglob("*"))
    else:  # a job with gaps keeps its clips and song for a retry, nothing else
        kept = {p.relative_to(work).parts[0] for p in work.iterdir()} if work.exists() else set()
        assert kept <= {"clips", "audio"}, kept
    return Outcome(
        job_id=job_id,
        status=result["status"],
        frames=frames,
        slots=n,
        clips_lost=n - len(finals),
        duplicate_clip_runs=sum(started.values()) - len(started),
        duplicate_finals=sum(finals.values()) - len(finals),
        assemblies=len(finished),
        gaps=sum(1 for s in report["slots"] if s["outcome"] != "ok"),
        assembly_starts=len(job_events(stack, "assemble.started", job_id)),
    )
