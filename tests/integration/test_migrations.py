"""Alembic migrations of the job store, on SQLite and on the machine's PostgreSQL.

The migrations build exactly the tables of ``pipeline/tables.py``; a database made by ``create_all``
before migrations existed is upgraded by ``clipline db upgrade`` with its records; workers and the
CLI refuse an older (or newer) schema and name the command that fixes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pipeline import schema
from pipeline.store import JobStore, new_engine
from pipeline.tables import Base

from . import legacy_schema as legacy
from .pg import fresh_database
from .private import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIPLINE = str(Path(sys.executable).with_name("clipline"))  # the console script of this environment


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/jobs.db"
        return
    with fresh_database("clipline_migrations") as url:
        yield url


def clipline(db_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))}
    env.update({"CLIPLINE_DATABASE_URL": db_url, "CLIPLINE_METRICS_PORT": "0", "PYTHONPATH": str(ROOT)})
    return subprocess.run(
        [CLIPLINE, *args], env=env, text=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def make_legacy_database(db_url: str) -> None:
    """A database as main's ``create_all`` made it (no alembic_version), with a job that was retried
    and finished, its earlier attempt and its callback delivery."""
    engine = sqlalchemy.create_engine(db_url)
    legacy.LegacyBase.metadata.create_all(engine)
    ended = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with sqlalchemy.orm.Session(engine) as s:
        s.add(
            legacy.RenderJob(
                id="old-job",
                mix_request_id="req-1",
                trace_id="t1",
                status="COMPLETED_WITH_GAPS",
                progress=100,
                error_log="2026-11-30T11:59:00Z === attempt 2\n",
                request={"job_id": "old-job", "lines": []},
                request_hash="h" * 64,
                metrics={"render": {"clip_stats": {"total": 3, "placeholder": 1}}},
                output_path="/out/old-job/final.mp4",
                report_path="/out/old-job/report.json",
                attempts=2,
                created_at=ended - timedelta(minutes=5),
                updated_at=ended,
                finished_at=ended,
            )
        )
        s.add(legacy.JobAttempt(job_id="old-job", attempt=1, status="FAILED", finished_at=ended, error="x"))
        s.add(
            legacy.WebhookDelivery(
                id="d1",
                job_id="old-job",
                attempt=2,
                status="COMPLETED_WITH_GAPS",
                url="http://127.0.0.1:9/cb",
                body="{}",
                state="failed",
                tries=8,
                next_at=ended,
            )
        )
        s.commit()
    engine.dispose()


def revision_of(db_url: str) -> str | None:
    engine = new_engine(db_url)
    try:
        return schema.state(engine).current
    finally:
        engine.dispose()


def test_the_revision_list_in_the_code_is_the_migration_scripts() -> None:
    scripts = ScriptDirectory.from_config(schema._config())
    assert tuple(reversed([r.revision for r in scripts.walk_revisions()])) == schema.REVISIONS
    assert scripts.get_current_head() == schema.head()


def test_the_migrations_build_exactly_the_tables_of_the_code(db_url: str) -> None:
    engine = new_engine(db_url)
    before, after = schema.upgrade(engine)
    assert (before.kind, after.kind) == ("empty", "current")
    with engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    # A change to pipeline/tables.py without a migration fails here.
    assert differences == []


def test_a_database_made_by_the_previous_schema_is_upgraded_with_its_records(db_url: str) -> None:
    # Given a database made by create_all before migrations existed, holding a finished job
    make_legacy_database(db_url)

    # When a worker starts on it, or the CLI reads it: refused, naming the command that fixes it
    worker = clipline(db_url, "worker", "--stage", "plan")
    assert worker.returncode == 3, worker.stderr
    assert "clipline db upgrade" in worker.stderr and "Traceback" not in worker.stderr
    assert worker.stderr.count("\n") == 1  # one line
    api = clipline(db_url, "api", "--port", str(free_port()))
    assert api.returncode == 3 and "clipline db upgrade" in api.stderr
    status = clipline(db_url, "status", "old-job", "--json")
    assert status.returncode == 3
    assert json.loads(status.stdout.splitlines()[-1])["error"]["code"] == "schema_mismatch"
    assert clipline(db_url, "db", "current").returncode == 3

    # When the operator upgrades it
    up = clipline(db_url, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert "no revision" in up.stdout and f"now at revision {schema.head()}" in up.stdout

    # Then it is at the code's revision, with the new index, and every record reads as before
    assert revision_of(db_url) == schema.head()
    engine = new_engine(db_url)
    indexes = {ix["name"] for ix in sqlalchemy.inspect(engine).get_indexes("render_jobs")}
    engine.dispose()
    assert "ix_render_jobs_finished_at" in indexes
    store = JobStore(db_url)
    job = store.get("old-job")
    assert (job.status, job.attempts, job.progress) == ("COMPLETED_WITH_GAPS", 2, 100)
    assert job.metrics["render"]["clip_stats"]["placeholder"] == 1
    assert [a.attempt for a in store.history("old-job")] == [1]
    assert store.finished_since(datetime(2026, 11, 30, tzinfo=UTC))[0].id == "old-job"
    store.engine.dispose()
    status = clipline(db_url, "status", "old-job", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout.splitlines()[-1])["status"] == "COMPLETED_WITH_GAPS"
    # and a second upgrade has nothing to do
    again = clipline(db_url, "db", "upgrade", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["before"]["state"] == "current"


def test_an_older_revision_is_refused_until_upgraded_and_a_newer_one_always(db_url: str) -> None:
    # Given a database migrated to the first revision only
    engine = new_engine(db_url)
    with engine.connect() as conn:
        from alembic import command

        command.upgrade(schema._config(conn), "0001")
        conn.commit()
    engine.dispose()
    refused = clipline(db_url, "jobs", "--json")
    assert refused.returncode == 3
    error = json.loads(refused.stdout.splitlines()[-1])["error"]
    assert "at revision 0001, older than the code's" in error["message"]
    assert "clipline db upgrade" in error["message"]
    assert clipline(db_url, "db", "upgrade").returncode == 0
    assert clipline(db_url, "jobs", "--json").returncode == 0

    # A database from a newer clipline is never touched by this one
    engine = new_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for args in (("jobs",), ("db", "upgrade")):
        res = clipline(db_url, *args)
        assert res.returncode == 3, res
        assert "9999" in res.stderr and "upgrade clipline" in res.stderr
    assert revision_of(db_url) == "9999"


def test_processes_opening_a_fresh_database_together_create_it_once(db_url: str) -> None:
    code = "import sys; from pipeline.store import JobStore; print(JobStore(sys.argv[1]).count_by_status())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    results = [(p.wait(60), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0] * 6, [err for _, err in results if err]
    assert revision_of(db_url) == schema.head()
