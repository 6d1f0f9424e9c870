"""``clipline worker`` options on bad values (README: "a bad option ... exit 2", ``usage``; DESIGN.md:
``clipline worker [--stage ...] [--concurrency N] [--processes N]``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import clipline, scratch_env


@pytest.mark.parametrize(
    "args",
    [("--processes", "0"), ("--processes", "-2"), ("--shutdown-timeout", "-5"), ("--concurrency", "0")],
    ids=["processes-0", "processes-negative", "shutdown-timeout-negative", "concurrency-0"],
)
def test_worker_with_a_nonsense_count_is_a_usage_error(
    tmp_path: Path, vhost: str, redis_url: str, args: tuple[str, ...]
) -> None:
    """``--processes 0`` / ``-2`` / ``--shutdown-timeout -5`` are exit 2 (``usage``), one line naming
    the option, before anything starts. Before: ``--processes 0`` went straight to ``dramatiq
    --processes 0`` (bare ``type=int``), which started no worker and exited 0 at once; the supervisor
    (clipline/worker.py:run) restarted it every second for ever and nothing consumed render.plan.
    ``--shutdown-timeout -5`` made a SIGTERM kill running messages at once; ``--concurrency 0`` became 1
    without a word."""
    env = scratch_env(
        tmp_path,
        CLIPLINE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        CLIPLINE_REDIS_URL=redis_url,
    )
    done = clipline(env, "worker", "--stage", "plan", *args, timeout=15)
    assert done.returncode == 2, (
        f"exit {done.returncode} (None: still running after 15 s, stopped by the test); "
        f"log tail: {done.stdout[-700:]}"
    )
    assert args[0] in done.stderr
