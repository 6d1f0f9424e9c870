"""README "Exit codes (every command)": a bad ``CLIPLINE_*`` variable is exit 2 ``settings_invalid``, with
one line for people on stderr and never a traceback; under ``--json`` the last stdout line is the error
object. Before audit F, malformed URLs, an out-of-range metrics port and an unknown log level were
accepted at start and then crashed the command (or were ignored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import clipline, last_json, scratch_env


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("CLIPLINE_DATABASE_URL", "not-a-database-url", ("jobs", "--json")),
        ("CLIPLINE_DATABASE_URL", "mysql://db.internal/clipline", ("jobs", "--json")),
        ("CLIPLINE_REDIS_URL", "127.0.0.1:6379", ("config", "list")),
        ("CLIPLINE_BROKER_URL", "rabbitmq.internal:5672", ("stats", "--json")),
    ],
    ids=["database-garbage", "database-unsupported-driver", "redis-no-scheme", "broker-no-scheme"],
)
def test_a_malformed_service_url_is_settings_invalid_not_a_traceback(
    tmp_path: Path, variable: str, value: str, args: tuple[str, ...]
) -> None:
    """A malformed service URL is exit 2 ``settings_invalid`` naming the variable, no traceback.

    Before: a CLIPLINE_DATABASE_URL that SQLAlchemy cannot parse (or whose driver is not installed),
    a CLIPLINE_REDIS_URL without a scheme and a CLIPLINE_BROKER_URL without a scheme passed the
    settings check (pipeline/settings.py: plain ``str``) and crashed the first command that opened
    them with a traceback (sqlalchemy ArgumentError, ModuleNotFoundError MySQLdb, redis ValueError,
    pika IndexError), exit 1 ``internal_error``."""
    env = scratch_env(tmp_path, **{variable: value})
    done = clipline(env, *args)
    assert "Traceback" not in done.stderr, done.stderr[-1500:]
    assert done.returncode == 2, (done.returncode, done.stderr[-600:])
    if "--json" in args:
        err = last_json(done.stdout)["error"]
        assert err["code"] == "settings_invalid", err
    assert variable in done.stderr, done.stderr[-600:]


@pytest.mark.parametrize(
    ("extra_env", "args"),
    [({"CLIPLINE_METRICS_PORT": "70000"}, ()), ({}, ("--metrics-port", "70000"))],
    ids=["CLIPLINE_METRICS_PORT", "--metrics-port"],
)
def test_a_metrics_port_out_of_range_is_exit_2_before_the_worker_starts(
    tmp_path: Path, vhost: str, redis_url: str, extra_env: dict[str, str], args: tuple[str, ...]
) -> None:
    """``CLIPLINE_METRICS_PORT=70000`` is ``settings_invalid``, ``--metrics-port 70000`` a usage
    error: exit 2, one line, no traceback. Before: both were accepted (no range on the setting nor
    the option) and ``clipline worker`` died in clipline/metrics_server.py:MetricsServer.start with
    ``OverflowError: bind(): port must be 0-65535``, exit 1."""
    env = scratch_env(
        tmp_path,
        CLIPLINE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        CLIPLINE_REDIS_URL=redis_url,
        **extra_env,
    )
    done = clipline(env, "worker", "--stage", "plan", *args, timeout=40)
    assert "Traceback" not in done.stderr, done.stderr[-800:]
    assert done.returncode == 2, (done.returncode, done.stderr[-600:])


def test_an_unknown_log_level_is_settings_invalid(tmp_path: Path) -> None:
    """``CLIPLINE_LOG_LEVEL=LOUD`` is exit 2 ``settings_invalid`` naming the variable, so an operator
    who asked for DEBUG with a typo learns it. Before: it was accepted silently (exit 0) and the
    level fell back to INFO (Settings.log_level was a free string; pipeline/logs.py:configure
    ignores a name logging does not know)."""
    env = scratch_env(tmp_path, CLIPLINE_LOG_LEVEL="LOUD")
    done = clipline(env, "jobs", "--json")
    assert done.returncode == 2, (done.returncode, done.stdout[-300:])
    assert last_json(done.stdout)["error"]["code"] == "settings_invalid"
    assert "CLIPLINE_LOG_LEVEL" in done.stderr
