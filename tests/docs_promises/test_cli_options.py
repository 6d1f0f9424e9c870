"""Options of ``clipline jobs`` and ``clipline stats`` on bad values (README: "a bad option" is exit 2;
``GET /jobs`` refuses the same values with 422): the command line refuses what the API refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import clipline, last_json, scratch_env


@pytest.mark.parametrize(
    "args", [("--limit", "-1"), ("--offset", "-3")], ids=["limit-negative", "offset-negative"]
)
def test_jobs_with_a_negative_limit_on_postgresql_is_a_usage_error(
    tmp_path: Path, pg_url: str, args: tuple[str, ...]
) -> None:
    """``clipline jobs --limit -1`` (or ``--offset -3``) is exit 2 ``usage`` naming the option, as
    ``GET /jobs`` answers 422 (limit 1..500, offset >= 0). Before, on PostgreSQL (the production
    store), the value reached SQL unchecked, PostgreSQL answered ``LIMIT must not be negative`` and
    the command died with a traceback: exit 1 ``internal_error``."""
    env = scratch_env(tmp_path, CLIPLINE_DATABASE_URL=pg_url)
    done = clipline(env, "jobs", *args, "--json")
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    assert done.returncode == 2, (done.returncode, done.stdout[-400:])
    assert last_json(done.stdout)["error"]["code"] in ("usage", "request_invalid")


@pytest.mark.parametrize(
    "args",
    [("jobs", "--limit", "-1"), ("jobs", "--limit", "0"), ("stats", "--window", "0h")],
    ids=["jobs-limit-negative", "jobs-limit-0", "stats-window-0"],
)
def test_cli_refuses_what_the_api_refuses(tmp_path: Path, args: tuple[str, ...]) -> None:
    """``jobs --limit -1``/``0`` and ``stats --window 0h`` are exit 2, as ``GET /jobs?limit=0`` and
    ``GET /stats?window_hours=0`` are 422. Before (SQLite): ``--limit -1`` listed every job (SQLite
    reads LIMIT -1 as no limit), ``--limit 0`` none, ``--window 0h`` reported an empty window; all
    exit 0."""
    env = scratch_env(tmp_path)
    done = clipline(env, *args, "--json")
    assert done.returncode == 2, (done.returncode, done.stdout[-300:])
    assert last_json(done.stdout)["error"]["code"] in ("usage", "request_invalid")
