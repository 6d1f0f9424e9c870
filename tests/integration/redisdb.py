"""A Redis db of this test run's own on the machine's shared server.

Several test runs (and other programs) may share the server on 6379. A run
takes the first db of 1..15 that is empty, claims it with a marker key set
with NX, and gives it back (flushed) at the end. A db that anybody else has
written to is never taken, and never flushed, with one exception: a db whose
marker names a test process of this machine's current boot that has since
died (a run killed before it could give its db back) is flushed and taken
over. The marker has no expiry, so a killed run's keys are never left
unmarked. When no db is free, the run gets a private redis-server of its own
(``tests.integration.private``) instead of failing.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from .private import private_redis

CLAIM_KEY = "clipline-test:claimed-by"
HOST, PORT, DBS = "127.0.0.1", 6379, range(1, 16)
_OWNER = re.compile(rb" host=(?P<host>\S+) boot=(?P<boot>\S+) pid=(?P<pid>\d+) start=(?P<start>\d+)$")


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot), or None when no such process is alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    return None if fields[0] == b"Z" else int(fields[19])  # state, ..., starttime (field 22)


def marker(owner: str, pid: int | None = None) -> str:
    """The claim's value: who claimed it, and how to tell later whether that process still lives."""
    pid = os.getpid() if pid is None else pid
    start = process_start(pid)
    host = socket.gethostname()
    return f"{owner}:{secrets.token_hex(6)} host={host} boot={_boot_id()} pid={pid} start={start}"


def _owner_dead(value: bytes | None) -> bool:
    """True only for a marker of this machine's current boot whose process is gone (or is another one)."""
    m = _OWNER.search(value or b"")
    if m is None or m["host"].decode() != socket.gethostname() or m["boot"].decode() != _boot_id():
        return False
    return process_start(int(m["pid"])) != int(m["start"])


def _claim(r: redis.Redis, token: str) -> bool:
    if r.dbsize() == 0:
        if not r.set(CLAIM_KEY, token, nx=True):
            return False
        if r.dbsize() == 1:
            return True
        r.delete(CLAIM_KEY)  # someone wrote between our look and our claim: not ours after all
        return False
    with r.pipeline() as pipe:  # a dead run's db: taken over only if its marker is unchanged meanwhile
        try:
            pipe.watch(CLAIM_KEY)
            if not _owner_dead(pipe.get(CLAIM_KEY)):
                return False
            pipe.multi()
            pipe.flushdb()
            pipe.set(CLAIM_KEY, token)
            pipe.execute()
        except redis.WatchError:
            return False
    return True


@contextmanager
def claimed_db(owner: str = "pytest", dbs: range = DBS) -> Iterator[str]:
    """Yield ``redis://.../N`` for an empty db claimed for this run; flush it afterwards."""
    token = marker(owner)
    for db in dbs:
        r = redis.Redis(host=HOST, port=PORT, db=db)
        if not _claim(r, token):
            continue
        try:
            yield f"redis://{HOST}:{PORT}/{db}"
        finally:
            if r.get(CLAIM_KEY) in (token.encode(), None):
                r.flushdb()
        return
    with tempfile.TemporaryDirectory(prefix="clipline-redis-") as tmp, private_redis(Path(tmp)) as server:
        yield server.url


def wipe(url: str) -> None:
    """Forget every key but the run's claim, as a Redis restart without persistence would."""
    r = redis.Redis.from_url(url)
    for key in r.scan_iter(count=1000):
        if key != CLAIM_KEY.encode():
            r.delete(key)
