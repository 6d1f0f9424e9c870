"""The fan-in: each clip outcome is recorded once; the recording that completes the set fires assembly.

One Lua script does it atomically in Redis: HSETNX the outcome (a redelivered
or duplicated clip message finds its field set and changes nothing), count
the fields, and SET NX the fired flag when the count reaches the total. Only
the caller that gets ``fire=True`` enqueues assembly. It also says whether the
job's ``planned`` marker still exists: when it does not, Redis lost the job's
state (a restart), and the caller restores the outcomes from disk at once
(``clipstage.restore_from_disk``) instead of waiting for the reconciler.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from . import keys

_RECORD = """
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local n = redis.call('HLEN', KEYS[1])
local fire = 0
if n >= tonumber(ARGV[3]) then
  if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then fire = 1 end
end
return {added, n, fire, redis.call('EXISTS', KEYS[3])}
"""

_ENTER = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local peak = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > peak then redis.call('SET', KEYS[2], n, 'EX', ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class Recorded:
    added: bool  # False: this index already had an outcome (duplicate delivery)
    done: int  # how many clips of the job have an outcome now
    fire: bool  # True for exactly one caller: the one that completed the set
    state_lost: bool = False  # the job's planned marker is gone: Redis lost the job's state


class Completion:
    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self._record = r.register_script(_RECORD)
        self._enter = r.register_script(_ENTER)

    def record(self, job_id: str, index: int, total: int, outcome: dict[str, Any]) -> Recorded:
        added, done, fire, planned = self._record(
            keys=[keys.job_results(job_id), keys.job_assemble_fired(job_id), keys.job_planned(job_id)],
            args=[str(index), json.dumps(outcome), total, keys.JOB_KEY_TTL_S],
        )
        return Recorded(bool(added), int(done), bool(fire), state_lost=not planned)

    def mark_planned(self, job_id: str, *, sent: bool = False) -> None:
        """Set the job's planned marker; its value is when (Unix seconds), for the status's ``eta_s``.
        ``sent``: its clip messages were sent before (state restored), else a new fan-out starts."""
        pipe = self.r.pipeline()
        pipe.set(keys.job_planned(job_id), f"{time.time():.3f}", ex=keys.JOB_KEY_TTL_S)
        if sent:
            pipe.set(keys.job_sent(job_id), "1", ex=keys.JOB_KEY_TTL_S)
        else:
            pipe.delete(keys.job_sent(job_id))
        pipe.execute()

    def mark_sent(self, job_id: str) -> None:
        """Every clip message of the job is with the broker (``planning``: a fan-out cut short resumes)."""
        self.r.set(keys.job_sent(job_id), "1", ex=keys.JOB_KEY_TTL_S)

    def fan_out_cut_short(self, job_id: str) -> bool:
        """The job is planned (its marker is there: Redis kept its state) but not every clip message was
        sent. Without the planned marker the state was lost: the reconciler restores it, not the plan."""
        return bool(self.r.exists(keys.job_planned(job_id))) and not self.r.exists(keys.job_sent(job_id))

    def planned_at(self, job_id: str) -> float | None:
        """When the job was (last) marked planned; None when unknown (no marker, or a marker of "1"
        written by the previous release)."""
        raw = self.r.get(keys.job_planned(job_id))
        try:
            at = float(raw) if raw is not None else None
        except ValueError:
            return None
        return at if at is not None and at > 1e9 else None

    def outcomes(self, job_id: str) -> dict[int, dict[str, Any]]:
        raw = self.r.hgetall(keys.job_results(job_id))
        return {int(k): json.loads(v) for k, v in raw.items()}

    def outcome(self, job_id: str, index: int) -> dict[str, Any] | None:
        raw = self.r.hget(keys.job_results(job_id), str(index))
        return json.loads(raw) if raw is not None else None

    def has(self, job_id: str, index: int) -> bool:
        return bool(self.r.hexists(keys.job_results(job_id), str(index)))

    def done_count(self, job_id: str) -> int:
        return int(self.r.hlen(keys.job_results(job_id)))

    # Attempts and last error per clip, kept across retries for the report.
    def note_attempt(self, job_id: str, index: int, error: str | None = None) -> int:
        pipe = self.r.pipeline()
        pipe.hincrby(keys.job_attempts(job_id), str(index), 1)
        if error:
            pipe.hset(keys.job_attempts(job_id), f"{index}:error", error[:500])
        pipe.expire(keys.job_attempts(job_id), keys.JOB_KEY_TTL_S)
        return int(pipe.execute()[0])

    def note_error(self, job_id: str, index: int, error: str) -> None:
        self.r.hset(keys.job_attempts(job_id), f"{index}:error", error[:500])

    def attempts(self, job_id: str, index: int) -> tuple[int, str | None]:
        n, err = self.r.hmget(keys.job_attempts(job_id), [str(index), f"{index}:error"])
        return int(n or 0), (None if err is None else keys.text(err))

    # Clips of a job running right now, and the peak, measured (not configured).
    def enter(self, job_id: str) -> int:
        return int(
            self._enter(keys=[keys.job_inflight(job_id), keys.job_peak(job_id)], args=[keys.JOB_KEY_TTL_S])
        )

    def leave(self, job_id: str) -> None:
        self.r.decr(keys.job_inflight(job_id))

    def peak(self, job_id: str) -> int:
        return int(self.r.get(keys.job_peak(job_id)) or 0)

    def forget(self, job_id: str) -> None:
        """Drop the job's coordination keys (after it ended)."""
        for key in self.r.scan_iter(match=keys.job_pattern(job_id), count=500):
            self.r.delete(key)
