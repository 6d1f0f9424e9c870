"""A Redis db of this test run's own on the machine's shared server.

Several test runs (and other programs) may share the server on 6379. A run
takes the first db of 1..15 that is empty, claims it with a marker key set
with NX, and gives it back (flushed) at the end. A db that anybody else has
written to is never taken, and never flushed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis

CLAIM_KEY = "clipline-test:claimed-by"
CLAIM_TTL_S = 6 * 3600
HOST, PORT, DBS = "127.0.0.1", 6379, range(1, 16)


@contextmanager
def claimed_db(owner: str = "pytest") -> Iterator[str]:
    """Yield ``redis://.../N`` for an empty db claimed for this run; flush it afterwards."""
    token = f"{owner}:{secrets.token_hex(6)}"
    for db in DBS:
        r = redis.Redis(host=HOST, port=PORT, db=db)
        if r.dbsize() != 0 or not r.set(CLAIM_KEY, token, nx=True, ex=CLAIM_TTL_S):
            continue
        if r.dbsize() != 1:  # someone wrote between our look and our claim: not ours after all
            r.delete(CLAIM_KEY)
            continue
        try:
            yield f"redis://{HOST}:{PORT}/{db}"
        finally:
            if r.get(CLAIM_KEY) in (token.encode(), None):
                r.flushdb()
        return
    raise RuntimeError(f"no empty Redis db among {DBS.start}..{DBS.stop - 1} on {HOST}:{PORT}")


def wipe(url: str) -> None:
    """Forget every key but the run's claim, as a Redis restart without persistence would."""
    r = redis.Redis.from_url(url)
    for key in r.scan_iter(count=1000):
        if key != CLAIM_KEY.encode():
            r.delete(key)
