"""Outside audit H (each test here failed on the code before its fix).

The SQL store unreachable for a few seconds (PostgreSQL restarted or failed over, its connections
terminated) while clips run.

The clip stage reads and writes the job record on every message (``clipstage._skip_reason``:
``ctx.store.get``; ``clipstage.finish``: ``ctx.store.advance``), outside the ``try`` that turns
failures into retries, and ``actors/clip.py::retry_when`` retries only ``TransientClipError``,
``RateLimitExceeded`` and ``StorageUnavailable``: a ``sqlalchemy.exc.OperationalError`` fails the message
at once and it is dead-lettered. The job then waits for the reconciler (90 s + up to 30 s by default),
spending one of its repairs, for what was a database blip.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import sqlalchemy

from tests.integration.conftest import Stack, new_job_id
from tests.integration.faultkit import (
    FINAL_CLIP,
    clip_events,
    dead_letters,
    init_db,
    slow_ffmpeg,
    small_request,
    submit,
    wait_final,
    wait_for,
)
from tests.integration.pg import server_url

pytestmark = pytest.mark.integration


def _block(name: str, allow: bool) -> None:
    """Refuse (or allow again) new connections to database ``name`` and end the open ones."""
    admin = sqlalchemy.create_engine(server_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}'))
            if not allow:
                conn.execute(
                    sqlalchemy.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :d AND pid <> pg_backend_pid()"
                    ),
                    {"d": name},
                )
    finally:
        admin.dispose()


def test_a_short_database_outage_while_clips_run_does_not_dead_letter_them(stack: Stack, pg_url: str) -> None:
    """6-line job on PostgreSQL, one worker (all stages, 2 clip threads), a cluster-wide clip cap of 1, every
    ffmpeg held while a file exists. Once the first clip has started, the job's database refuses connections
    and its backends are terminated for 4 s; the hold is lifted at the same moment, so the first clip
    finishes, and the next ones start, while the database is away.

    Observed: those clip messages raise ``OperationalError`` out of ``extract_clip`` and are dead-lettered
    (``render.clip.XQ`` grows); when the database is back nothing is left to run them, and the job stays
    EXTRACTING (the reconciler's stale time is an hour here, so it does not hide the loss).

    Right: a database that fails for now is a transient error: the message is retried with backoff (as a
    ``StorageUnavailable`` is), nothing is dead-lettered, the job ends COMPLETED once the database is back."""
    db = urlsplit(pg_url).path.lstrip("/")
    stack.env["CLIPLINE_DATABASE_URL"] = pg_url
    stack.env["CLIPLINE_RECONCILE_AFTER_S"] = "3600"
    hold = stack.tmp / "hold-ffmpeg"
    hold.touch()
    real = stack.env.get("CLIPLINE_FFMPEG", "ffmpeg")
    stack.env["CLIPLINE_FFMPEG"] = slow_ffmpeg(stack, 3.0, only_while=hold)
    init_db(stack)
    res = stack.cli("config", "set", "render_clip_concurrency", "1", timeout=60)
    assert res.returncode == 0, res.stderr
    try:
        stack.start_workers("--stage", "all", "--concurrency", "2")
        stack.env["CLIPLINE_FFMPEG"] = real
        job_id = new_job_id("dbdown")
        request = small_request(stack, job_id, 6)
        xq0 = dead_letters(stack.env["CLIPLINE_BROKER_URL"])
        submit(stack, request)
        wait_for("a clip started", lambda: len(clip_events(stack, job_id, ("started",))) >= 1, timeout=90)
        time.sleep(0.5)
        _block(db, allow=False)
        try:
            hold.unlink()
            time.sleep(4)
        finally:
            _block(db, allow=True)
        try:
            result = wait_final(stack, job_id, timeout=30)
        except Exception:  # noqa: BLE001 - not final in time (status --watch killed)
            result = None
        xq = {q: n - xq0.get(q, 0) for q, n in dead_letters(stack.env["CLIPLINE_BROKER_URL"]).items()}
        assert result is not None and result["status"] == "COMPLETED", (
            f"job not final 30 s after the database came back; dead-lettered: {xq}; "
            f"clip finals {dict(clip_events(stack, job_id, FINAL_CLIP))}"
        )
        assert sum(xq.values()) == 0, xq
    finally:
        stack.cli("config", "unset", "render_clip_concurrency", timeout=60)
        stack.stop_workers()
