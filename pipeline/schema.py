"""The job store's schema version: Alembic migrations in ``pipeline/migrations``, checked at start.

- ``upgrade(engine)`` (``clipline db upgrade``) brings any database to the code's
  revision: an empty one gets the whole schema, one made by ``create_all``
  before migrations existed (tables but no ``alembic_version``) is taken over
  by the baseline revision, an older one runs the migrations it lacks.
- ``ensure_current(engine)`` is what every process does when it opens the
  store: an empty database is created at the code's revision (nothing to
  migrate), a current one is used, an older or newer one is refused with
  ``SchemaMismatch``, which names the command that fixes it.

Processes that open a fresh database together take a lock first (an advisory
lock on PostgreSQL, a lock file beside an SQLite file), so exactly one of them
creates the tables.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

from .errors import ClipLineError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Every revision in ``migrations/versions``, oldest first; the last is the code's. Kept here so that
#: opening the store (every process) needs no Alembic import; a test checks it against Alembic's view.
REVISIONS = ("0001", "0002")
_VERSION_TABLE = "alembic_version"
# Alembic logs each plugin it loads and each step at INFO; callers report what was done in one line.
logging.getLogger("alembic").setLevel(logging.WARNING)
UPGRADE_COMMAND = "clipline db upgrade"
#: pg_advisory_lock key of schema changes ("clipline" in ASCII, as a bigint).
_PG_LOCK_KEY = 0x636C69706C696E65
_BASELINE_TABLE = "render_jobs"


class SchemaMismatch(ClipLineError):
    """The database's schema is not the one this code was written for (older: run the upgrade)."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the database's revision; None: not under migrations (empty, or create_all)
    head: str  # the code's revision
    has_tables: bool

    @property
    def kind(self) -> str:
        """empty | legacy (create_all, no revision) | current | outdated | newer."""
        if self.current is None:
            return "legacy" if self.has_tables else "empty"
        if self.current == self.head:
            return "current"
        return "outdated" if self.current in REVISIONS else "newer"

    def describe(self) -> str:
        return {
            "empty": f"empty database (the code's revision is {self.head})",
            "legacy": f"tables made before migrations existed, no revision (the code's is {self.head})",
            "current": f"at revision {self.head}, the code's revision",
            "outdated": f"at revision {self.current}, older than the code's {self.head}",
            "newer": f"at revision {self.current}, which this code does not know (its newest is {self.head})",
        }[self.kind]


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    return REVISIONS[-1]


def _state(conn: Connection) -> SchemaState:
    tables = inspect(conn)
    current = None
    if tables.has_table(_VERSION_TABLE):
        current = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()
    conn.rollback()
    return SchemaState(current, head(), tables.has_table(_BASELINE_TABLE))


def state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return _state(conn)


@contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection held under the schema lock: one process at a time changes the schema."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        with open(f"{database}.schema-lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            conn.commit()
        try:
            yield conn
        finally:
            if engine.dialect.name == "postgresql":
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                conn.commit()


def _newer_error(found: SchemaState) -> SchemaMismatch:
    return SchemaMismatch(
        f"database schema {found.describe()}: this clipline is older than the database; "
        "upgrade clipline (a downgrade of the database is not automatic)"
    )


def _run_migrations(conn: Connection) -> SchemaState:
    from alembic import command

    command.upgrade(_config(conn), "head")
    conn.commit()
    return _state(conn)


def upgrade(engine: Engine) -> tuple[SchemaState, SchemaState]:
    """Run the migrations the database lacks; (state before, state after)."""
    with _exclusive(engine) as conn:
        before = _state(conn)
        if before.kind == "newer":
            raise _newer_error(before)
        return before, before if before.kind == "current" else _run_migrations(conn)


def ensure_current(engine: Engine) -> SchemaState:
    """Use a database at the code's revision; create an empty one; refuse any other (SchemaMismatch)."""
    found = state(engine)
    if found.kind in ("empty", "legacy"):
        # Looked at again under the lock: "legacy" may be a fresh database another process is creating.
        with _exclusive(engine) as conn:
            found = _state(conn)
            if found.kind == "empty":
                found = _run_migrations(conn)
    if found.kind == "current":
        return found
    if found.kind == "newer":
        raise _newer_error(found)
    raise SchemaMismatch(
        f"database schema {found.describe()} ({engine.url.render_as_string(hide_password=True)}): "
        f"run `{UPGRADE_COMMAND}` with the same CLIPLINE_DATABASE_URL, then start again"
    )
