"""A Redis lock held on a short, renewed lease.

A lock whose lifetime covers the longest possible holder (a download, an API
lookup with its retries) blocks everyone for that long when its holder is
SIGKILLed or OOM-killed. Held on a short lease renewed by a thread while the
holder lives, a dead holder's lock frees itself within ``lease_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.lock import Lock

#: A lock not renewed for this long belonged to a dead holder.
LEASE_S = 6.0


class LeaseTimeout(redis.exceptions.LockError):
    """The lock was still held by a live holder after the wait: transient, worth a retry later
    (never a reason for a placeholder or a failed job on the first try)."""

    transient = True


@contextmanager
def held(r: redis.Redis, key: str, *, wait_s: float, lease_s: float = LEASE_S) -> Iterator[None]:
    """Hold ``key`` for the block; waits up to ``wait_s`` for it, else raises LeaseTimeout (transient)."""
    lock = r.lock(key, timeout=lease_s, blocking_timeout=wait_s, thread_local=False)
    if not lock.acquire():
        raise LeaseTimeout(f"{key} still held by another process after {wait_s:g}s")
    with _renewed(lock, lease_s):
        yield


@contextmanager
def held_if_free(r: redis.Redis, key: str, *, lease_s: float = LEASE_S) -> Iterator[bool]:
    """Hold ``key`` for the block if nobody does (True); False, without waiting, when a live holder has it."""
    lock = r.lock(key, timeout=lease_s, blocking_timeout=0, thread_local=False)
    if not lock.acquire():
        yield False
        return
    with _renewed(lock, lease_s):
        yield True


@contextmanager
def _renewed(lock: Lock, lease_s: float) -> Iterator[None]:
    done = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, done, lease_s), daemon=True, name="lease")
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join(5)
        try:
            lock.release()
        except redis.RedisError:
            pass  # the lock went with a Redis restart, or expired: nothing left to release


def _renew(lock: Lock, done: threading.Event, lease_s: float) -> None:
    while not done.wait(lease_s / 3):
        try:
            lock.reacquire()
        except redis.RedisError:
            return  # lost (Redis restarted): the holder goes on; at worst the work is done twice
