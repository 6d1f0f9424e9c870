"""A liveness mark for a process doing a job's stage: refreshed by a thread while the work runs.

A stage lock (the assembly lock) must outlive the longest run, so a holder that
is SIGKILLed leaves it behind for that long. The heartbeat says within seconds
whether anyone is still at work; the reconciler frees a lock nobody is beating for (``gone``). The
assembler beats while it assembles, the planner from its plan lock to the end of its fan-out.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from . import keys

#: A holder not heard of for this long is dead; refreshed three times as often.
HEARTBEAT_TTL_S = 10.0


@contextmanager
def beating(r: redis.Redis, job_id: str, stage: str, ttl_s: float = HEARTBEAT_TTL_S) -> Iterator[None]:
    key, token = keys.job_holders(job_id, stage), secrets.token_hex(8)
    stop = threading.Event()

    def beat() -> None:
        r.hset(key, token, str(int((time.time() + ttl_s) * 1000)))
        r.expire(key, keys.JOB_KEY_TTL_S)

    def loop() -> None:
        while not stop.wait(ttl_s / 3):
            try:
                beat()
            except redis.RedisError:
                pass  # Redis away for a moment: the next beat tries again

    beat()
    thread = threading.Thread(target=loop, name=f"heartbeat-{stage}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        try:
            r.hdel(key, token)
        except redis.RedisError:
            pass


def gone(r: redis.Redis, job_id: str, stage: str, *, ttl_s: float = HEARTBEAT_TTL_S) -> bool:
    """Whether the job's stage has no live holder, for sure: a holder's mark has expired (it died:
    SIGKILL, OOM), or no mark at all has been seen for a whole TTL by successive calls. No mark at all
    is what a Redis restart leaves while the holder still runs (it beats again within TTL/3) and what a
    holder shows between taking its lock and its first beat: a live one is never taken for dead."""
    missing = keys.job_holders_missing(job_id, stage)
    now_ms = time.time() * 1000
    marks = _marks(r, job_id, stage)
    if any(m > now_ms for m in marks):
        r.delete(missing)
        return False
    if marks:
        return True
    r.set(missing, str(int(now_ms)), nx=True, ex=keys.JOB_KEY_TTL_S)
    since = r.get(missing)
    return since is not None and now_ms - float(since) >= ttl_s * 1000


def alive(r: redis.Redis, job_id: str, stage: str) -> bool:
    """Whether any process has beaten for the job's stage within its TTL."""
    now_ms = time.time() * 1000
    return any(m > now_ms for m in _marks(r, job_id, stage))


def _marks(r: redis.Redis, job_id: str, stage: str) -> list[float]:
    """Each holder's mark for the job's stage: until when (epoch ms) it counts as alive."""
    return [float(v) for v in r.hvals(keys.job_holders(job_id, stage))]
