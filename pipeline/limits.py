"""A cluster-wide cap on clips running at once, with numbered slots and leases, in Redis.

Each running clip holds one field of a hash: slot number -> holder token and
lease expiry. Acquiring counts the live holders (expired leases are dropped),
and when fewer than the current limit are running takes the lowest free slot
number, which is the ``parallel_slot`` of the logs (unique cluster-wide; within
0..cap-1 while a cap is set). With no cap set (``limit()`` returns None) slots
are still numbered and leased but never refused. The limit is read at every
attempt, so a change applies within seconds: raising it lets waiting clips
start, lowering it lets running clips finish and holds new ones. A holder
renews its lease while it works; one that dies stops renewing and its slot
frees itself within ``lease_s``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from . import keys

_ACQUIRE = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local live = 0
local taken = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expiry = tonumber(string.match(all[i + 1], ' (%d+)$'))
  if expiry < now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live = live + 1
    taken[all[i]] = true
  end
end
if live >= limit then return -1 end
for slot = 0, limit - 1 do
  if not taken[tostring(slot)] then
    redis.call('HSET', KEYS[1], slot, ARGV[3] .. ' ' .. (now + tonumber(ARGV[4])))
    return slot
  end
end
return -1
"""

_RENEW = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.match(v, '^(%S+)') == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
  return 1
end
return 0
"""

_RELEASE = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.match(v, '^(%S+)') == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


class SlotTimeout(TimeoutError):
    """No clip slot became free in time."""


#: The limit used while no cluster-wide cap is set: slots are still numbered and leased, never refused.
UNLIMITED = 1_000_000


class ClusterLimit:
    def __init__(
        self, r: redis.Redis, limit: Callable[[], int | None], *, lease_s: float = 30.0, poll_s: float = 0.1
    ) -> None:
        self.r = r
        self.limit = limit
        self.lease_ms = int(lease_s * 1000)
        self.poll_s = poll_s
        self._acquire = r.register_script(_ACQUIRE)
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    def try_acquire(self, token: str) -> int | None:
        limit = self.limit()
        args: list[int | str] = [self._now_ms(), UNLIMITED if limit is None else limit, token, self.lease_ms]
        slot = int(self._acquire(keys=[keys.clip_slots()], args=args))
        return None if slot < 0 else slot

    def running(self) -> int:
        now = self._now_ms()
        return sum(1 for v in self.r.hvals(keys.clip_slots()) if int(v.split()[-1]) >= now)

    @contextmanager
    def slot(
        self, *, timeout_s: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[int]:
        """Wait for a free slot, hold it (renewing the lease) for the block, then free it."""
        token = secrets.token_hex(8)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (slot := self.try_acquire(token)) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise SlotTimeout(f"no clip slot free within {timeout_s:g}s")
            if should_stop is not None and should_stop():
                raise SlotTimeout("stopped while waiting for a clip slot")
            time.sleep(self.poll_s)
        done = threading.Event()
        renewer = threading.Thread(
            target=self._keep, args=(slot, token, done), daemon=True, name=f"clip-slot-{slot}"
        )
        renewer.start()
        try:
            yield slot
        finally:
            done.set()
            renewer.join(5)
            self._release(keys=[keys.clip_slots()], args=[slot, token])

    def _keep(self, slot: int, token: str, done: threading.Event) -> None:
        while not done.wait(self.lease_ms / 3000):
            try:
                self._renew(keys=[keys.clip_slots()], args=[slot, token, self._now_ms() + self.lease_ms])
            except redis.RedisError:
                pass
