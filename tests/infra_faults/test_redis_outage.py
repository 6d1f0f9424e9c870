"""Outside audit H (each test here failed on the code before its fix).

Redis down for a few seconds (restarted, failed over) while clip messages are delivered or finish.

RELIABILITY.md: "a Redis connection error during a clip was treated as permanent ... Redis connection
errors are retried (``pipeline/errors.py::is_transient``)". That holds only inside the cut
(``clipstage._run_clip``'s ``try`` around ``clip_reuse.cut_once``). Everything else a clip message does
with Redis -- taking a cluster slot (``actors/clip.py``: ``ctx.limit.slot()``), the slot's leased lock
(``clipstage._slot_held``), ``_skip_reason``'s ``completion.has``, recording the outcome
(``clipstage.finish``) -- raises ``redis.ConnectionError`` out of the actor, and the clip actor's
``retry_when`` (``actors/clip.py::retry_when``) only retries ``TransientClipError``,
``RateLimitExceeded`` and ``StorageUnavailable``: the message is failed at once and dead-lettered to
``render.clip.XQ``. The redis client has no retries of its own (redis-py 8 here: ``retries=0``), so a
Redis outage of a second is enough. No clip is left to notice the lost state, so the job stays
EXTRACTING until a reconciler sweep (``CLIPLINE_RECONCILE_AFTER_S``, 90 s + up to 30 s by default),
which then spends repairs on it; and the dead-lettered messages sit in the DLQ for an operator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Stack, new_job_id
from tests.integration.faultkit import (
    FINAL_CLIP,
    clip_events,
    dead_letters,
    init_db,
    slow_ffmpeg,
    small_request,
    submit,
    wait_final,
    wait_for,
)
from tests.integration.private import PrivateRedis, private_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(stack: Stack) -> Iterator[PrivateRedis]:
    with private_redis(stack.tmp / "redis") as server:
        stack.env["CLIPLINE_REDIS_URL"] = server.url
        yield server
        stack.stop_workers()


def _save(server: PrivateRedis) -> None:
    """Write the dataset to disk, so the restarted server comes back with every key (an outage, no loss)."""
    subprocess.run(["redis-cli", "-p", str(server.port), "SAVE"], check=True, capture_output=True, timeout=10)


def test_a_short_redis_outage_while_clips_wait_for_a_slot_does_not_dead_letter_them(
    stack: Stack, own_redis: PrivateRedis
) -> None:
    """6-line job, one worker (all stages, 2 clip threads), a cluster-wide clip cap of 1
    (``clipline config set render_clip_concurrency 1``), every ffmpeg held 3 s while a file exists: one
    clip cuts, the next waits for a slot (``ClusterLimit.slot`` polls Redis every 0.1 s). Once the first
    clip has started, Redis is saved and stopped for 3 s, then started again with its data.

    Observed: the waiting clip messages raise ``redis.ConnectionError`` out of ``extract_clip`` and are
    dead-lettered at once, one after the other (``render.clip.XQ`` +5); once Redis is back no message is
    left to run them, and the job stays EXTRACTING with 1 of 6 outcomes (the reconciler's stale time here
    is an hour, so it does not hide the loss; with the 90 s default it would re-send them after 1.5-2
    minutes, using up one of the job's 5 repairs).

    Right: a Redis connection error in a clip (or fallback) message is transient and retried with backoff
    like any other (``pipeline/errors.py::is_transient``, RELIABILITY.md "Redis connection errors are
    retried"); nothing is dead-lettered and the job ends COMPLETED shortly after Redis is back."""
    stack.env["CLIPLINE_RECONCILE_AFTER_S"] = "3600"
    stack.env["CLIPLINE_RECONCILE_INTERVAL_S"] = "1"
    hold = stack.tmp / "hold-ffmpeg"
    hold.touch()
    real = stack.env.get("CLIPLINE_FFMPEG", "ffmpeg")
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, 3.0, only_while=hold)
    init_db(stack)
    res = stack.cli("config", "set", "render_clip_concurrency", "1", timeout=60)
    assert res.returncode == 0, res.stderr
    stack.start_workers("--stage", "all", "--concurrency", "2")
    stack.env["CLIPLINE_FFMPEG"] = real
    job_id = new_job_id("rdown")
    request = small_request(stack, job_id, 6)
    xq0 = dead_letters(stack.env["CLIPLINE_BROKER_URL"])  # the run's vhost is shared by its tests
    submit(stack, request)
    wait_for("a clip started", lambda: len(clip_events(stack, job_id, ("started",))) >= 1, timeout=90)
    time.sleep(0.5)
    assert sum(clip_events(stack, job_id, FINAL_CLIP).values()) < 4, "the fault came too late"
    _save(own_redis)
    own_redis.stop()
    time.sleep(3)
    own_redis.start()
    hold.unlink()
    result = wait_final(stack, job_id, timeout=30) if _ends(stack, job_id, 30) else None
    xq = {q: n - xq0.get(q, 0) for q, n in dead_letters(stack.env["CLIPLINE_BROKER_URL"]).items()}
    assert result is not None and result["status"] == "COMPLETED", (
        f"job not final 30 s after Redis came back; dead-lettered: {xq}; "
        f"clip finals {dict(clip_events(stack, job_id, FINAL_CLIP))}"
    )
    assert sum(xq.values()) == 0, xq


def _ends(stack: Stack, job_id: str, timeout: float) -> bool:
    """Whether the job reaches a final state within ``timeout`` (polling the CLI's status)."""
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = stack.cli("status", job_id, "--json", timeout=30)
        if res.stdout.strip():
            status = json.loads(res.stdout.strip().splitlines()[-1])["status"]
            if status in ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED", "CANCELLED"):
                return True
        time.sleep(1)
    return False


def _song_probe_held(stack: Stack, hold: Path, delay_s: float) -> str:
    """An ffmpeg/ffprobe pair whose ffprobe of a job's downloaded song (``work/{job}/audio/source``) waits
    ``delay_s`` while ``hold`` exists: the plan stage's song preparation then holds the song's lease."""
    bin_dir = stack.tmp / "song-held"
    bin_dir.mkdir(exist_ok=True)
    for name in ("ffmpeg", "ffprobe"):
        real = shutil.which(name)
        assert real, name
        held = f"case \"$*\" in */audio/source*) [ -e '{hold}' ] && sleep {delay_s};; esac\n"
        wait = held if name == "ffprobe" else ""
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\n{wait}exec {real} "$@"\n')
        script.chmod(0o755)
    return str(bin_dir / "ffmpeg")


def test_a_short_redis_outage_while_the_assembly_waits_for_the_song_does_not_fail_the_job(
    stack: Stack, own_redis: PrivateRedis
) -> None:
    """2-line job, one worker (all stages). The plan stage prepares the song while the clips are cut
    (``planning.fanned_out`` -> ``audio.prepare``) and holds the song's leased lock; its ffprobe of the
    song is held 8 s here, so the assembler waits on that lease (``audio.prepare`` ->
    ``leases.held``, redis-py polling the lock). While it waits Redis is stopped for 2 s (saved first,
    restarted with its data).

    Observed: the lock poll raises ``redis.ConnectionError``; ``assembly._assemble``'s catch-all
    ``except Exception`` ("a fault of ours ... no retry would change the outcome") turns it into
    ``FAILED: assembly failed: internal error ConnectionError ...``: a healthy job, all its clips cut,
    ends FAILED for a Redis blip of 2 s (and ``actors/assemble.py::retry_when`` would not retry a
    ``redis.ConnectionError`` either).

    Right: a Redis connection error is transient (``pipeline/errors.py::is_transient``): the assembly is
    retried and the job ends COMPLETED once Redis is back."""
    stack.env["CLIPLINE_RECONCILE_AFTER_S"] = "3600"
    hold = stack.tmp / "hold-song"
    hold.touch()
    stack.env["CLIPLINE_FFMPEG"] = _song_probe_held(stack, hold, 8.0)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("rsong")
    request = small_request(stack, job_id, 2)
    submit(stack, request)
    wait_for(
        "the assembly to start",
        lambda: any(e.get("job_id") == job_id for e in stack.events("assemble.started")),
        timeout=60,
    )
    time.sleep(0.5)  # the assembler is now waiting on the song's lease, held by the plan stage
    _save(own_redis)
    own_redis.stop()
    time.sleep(2)
    own_redis.start()
    hold.unlink()
    result = wait_final(stack, job_id, timeout=40)
    assert result["status"] == "COMPLETED", (result["status"], result.get("error"))


def test_a_job_is_failed_naming_redis_once_redis_is_gone_past_the_bound(
    stack: Stack, own_redis: PrivateRedis
) -> None:
    """The invariant under audit: every job ends in a final state in bounded time, whatever fails for ever.
    A 4-line job is running (ffmpeg held 2 s per run) when its Redis goes away and never comes back; the
    reconciler runs after 3 s, every 1 s, with 2 repairs allowed.

    Outside audit, fixed since (the test failed before). Before: the job stayed EXTRACTING for ever. The
    clip messages are dead-lettered, and the only thing that ends stuck jobs, the sweeper
    (``clipline/sweeper.py::Sweeper._loop``), first needed Redis for its cluster lock and for the repair
    count: every sweep failed with ``reconcile.failed`` and nobody ever wrote a final state, although the
    job record (SQL) was reachable.

    Now: once Redis has been unreachable for ``(max repairs + 1) x stale time`` (9 s here), each sweep
    fails, in SQL alone, the jobs that made no progress for that long (``reconcile.end_without_redis``),
    naming Redis as the cause, counted and called back as the reconciler's give-up is."""
    stack.env.update(
        {
            "CLIPLINE_RECONCILE_AFTER_S": "3",
            "CLIPLINE_RECONCILE_INTERVAL_S": "1",
            "CLIPLINE_RECONCILE_MAX_REPAIRS": "2",
        }
    )
    hold = stack.tmp / "hold-ffmpeg"
    hold.touch()
    real = stack.env.get("CLIPLINE_FFMPEG", "ffmpeg")
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, 2.0, only_while=hold)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    stack.env["CLIPLINE_FFMPEG"] = real
    job_id = new_job_id("rgone")
    submit(stack, small_request(stack, job_id, 4))
    wait_for("a clip started", lambda: len(clip_events(stack, job_id, ("started",))) >= 1, timeout=90)
    own_redis.stop()
    hold.unlink()
    from pipeline.store import JobStore

    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and store.get(job_id).status not in ("FAILED", "COMPLETED"):
        time.sleep(0.5)
    failed_sweeps = len(stack.events("reconcile.failed"))
    job = store.get(job_id)
    assert job.status == "FAILED", f"{job.status} 40 s after Redis went away ({failed_sweeps} sweeps failed)"
    assert "Redis" in (job.error_log or "") and "unreachable" in (job.error_log or ""), job.error_log
    # with its report.json all the same: each slot's outcome read from its clip's sidecar. It is written
    # only once this sweeper's compare-and-set has won the job (a job that moved on keeps its own report),
    # so the record says FAILED a few milliseconds before it names the report (CI once looked in between).
    wait_for("the report's path on the job", lambda: store.get(job_id).report_path, timeout=10)
    job = store.get(job_id)
    assert job.report_path, "no report.json for the job failed without Redis"
    report = json.loads(Path(job.report_path).read_text())
    assert report["status"] == "FAILED" and "Redis" in report["error"]
    assert len(report["slots"]) == 4
