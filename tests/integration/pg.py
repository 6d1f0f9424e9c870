"""The machine's PostgreSQL for tests: a throwaway database per test, or a skip that says how to enable it.

Where to connect comes from libpq's own variables: ``PGHOST`` (default 127.0.0.1), ``PGPORT`` (5432),
``PGUSER`` (postgres) and ``PGPASSWORD`` or ``~/.pgpass`` (read by libpq itself, so no password ever
appears in a URL or a log). The role must be allowed to create databases. ``./dev.sh test`` creates
such a role where ``pg_hba.conf`` asks for a password (Debian's default for TCP connections).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy

HOW_TO_ENABLE = (
    "to run them, give a role that may CREATE DATABASE: PGUSER and PGPASSWORD (or ~/.pgpass), "
    "PGHOST/PGPORT for another server; or run ./dev.sh test, which creates one "
    "(role clipline_test) where pg_hba.conf wants a password"
)


def server_url(database: str) -> str:
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    return f"postgresql+psycopg://{user}@{host}:{port}/{database}"


def unavailable() -> str | None:
    """None when the admin connection works, else the skip reason (what failed and how to enable)."""
    url = server_url("postgres")
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        return None
    except sqlalchemy.exc.OperationalError as exc:
        cause = str(exc.orig).strip().splitlines()[-1] if exc.orig else type(exc).__name__
        return f"PostgreSQL tests skipped: cannot connect to {url} ({cause}); {HOW_TO_ENABLE}"
    finally:
        engine.dispose()


@contextmanager
def fresh_database(prefix: str = "clipline_it") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it (with any connection still open) afterwards."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(server_url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
