"""A liveness mark for a process doing a job's stage: refreshed by a thread while the work runs.

A stage lock (the assembly lock) must outlive the longest run, so a holder that
is SIGKILLed leaves it behind for that long. The heartbeat says within seconds
whether anyone is still at work; the reconciler frees a lock nobody is beating for (``gone``). The
assembler beats while it assembles, the planner from its plan lock to the end of its fan-out.

Liveness is measured by Redis's clock alone: each holder is listed in the stage's holders hash and
keeps its own key (``keys.job_holder_beat``) alive with a TTL (``PX``) that each beat sets again; the
"no mark at all" wait is timed with Redis ``TIME``. No host compares its wall clock with another's, so a
sweeper whose clock is ahead (NTP step, resumed VM) never takes a live holder for dead.
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
    mark = keys.job_holder_beat(job_id, stage, token)
    ttl_ms = max(1, int(ttl_s * 1000))
    stop = threading.Event()

    def beat() -> None:
        pipe = r.pipeline(transaction=True)
        pipe.set(mark, "1", px=ttl_ms)  # alive while this key lives: expired by Redis's clock
        # The hash lists the holders (the value, this host's deadline in epoch ms, is for people to read;
        # nothing compares it with another clock). A listed holder without its key is dead.
        pipe.hset(key, token, str(int((time.time() + ttl_s) * 1000)))
        pipe.expire(key, keys.JOB_KEY_TTL_S)
        pipe.execute()

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
        thread.join(timeout=ttl_s)  # no beat of ours lands after the holder is struck off
        try:
            pipe = r.pipeline(transaction=True)  # both at once: never listed without its key
            pipe.hdel(key, token)
            pipe.delete(mark)
            pipe.execute()
        except redis.RedisError:
            pass


def gone(r: redis.Redis, job_id: str, stage: str, *, ttl_s: float = HEARTBEAT_TTL_S) -> bool:
    """Whether the job's stage has no live holder, for sure: a listed holder's key has expired (it died:
    SIGKILL, OOM), or no holder at all has been listed for a whole TTL by successive calls (timed by
    Redis ``TIME``). No holder at all is what a Redis restart leaves while the holder still runs (it beats
    again within TTL/3) and what a holder shows between taking its lock and its first beat: a live one is
    never taken for dead. Only Redis's clock is read, never this host's."""
    missing = keys.job_holders_missing(job_id, stage)
    listed, live = _holders(r, job_id, stage)
    if live:
        r.delete(missing)
        return False
    if listed:
        return True
    now_ms = _redis_now_ms(r)
    r.set(missing, str(now_ms), nx=True, ex=keys.JOB_KEY_TTL_S)
    since = r.get(missing)
    return since is not None and now_ms - float(since) >= ttl_s * 1000


def alive(r: redis.Redis, job_id: str, stage: str) -> bool:
    """Whether any listed holder of the job's stage has beaten within its TTL (its key still exists)."""
    return _holders(r, job_id, stage)[1] > 0


#: The holders listed for a stage (KEYS[1]) and how many still have their key (ARGV[1] .. token), read
#: at one instant: a Redis flush or a holder's end between two separate reads cannot fake a dead holder.
_HOLDERS = """
local tokens = redis.call('HKEYS', KEYS[1])
local live = 0
for _, token in ipairs(tokens) do
    live = live + redis.call('EXISTS', ARGV[1] .. token)
end
return {#tokens, live}
"""


def _holders(r: redis.Redis, job_id: str, stage: str) -> tuple[int, int]:
    """How many holders of the job's stage are listed, and how many of them still have their key."""
    prefix = keys.job_holder_beat(job_id, stage, "")
    listed, live = r.register_script(_HOLDERS)(keys=[keys.job_holders(job_id, stage)], args=[prefix])
    return int(listed), int(live)


def _redis_now_ms(r: redis.Redis) -> int:
    """Redis's clock (``TIME``), in epoch ms."""
    seconds, micros = r.time()
    return int(seconds) * 1000 + int(micros) // 1000
