"""The dramatiq command line that runs one stage: its queue, processes, threads and prefetch."""

from __future__ import annotations

import sys

from pipeline.stages import Stage

from . import names

#: The module the dramatiq CLI loads: it builds the broker and registers the actors.
APP_MODULE = "actors.app"
#: Set by ``clipline worker`` for each stage command it starts (the stage's name); ``actors.app``
#: refuses to load without it (lower case, like Dramatiq's own ``dramatiq_queue_prefetch``).
STAGE_ENV = "clipline_worker_stage"
REFUSAL = (
    "error: run workers with `clipline worker --stage plan|clip|fallback|assemble|all`, not the plain "
    "dramatiq command: it would run without the stage's prefetch cap, the metrics endpoint, the sweeper "
    "(reconcile, retention, webhook retries) and the restart of a dead stage"
)


def stage_argv(stage: Stage, *, processes: int, threads: int, shutdown_timeout_s: float) -> list[str]:
    """``python -m dramatiq actors.app --queues render.<stage> ...``: one stage per command. On SIGTERM
    it lets running messages finish for up to ``shutdown_timeout_s`` (set above the stage's longest run)."""
    return [
        sys.executable,
        "-m",
        "dramatiq",
        APP_MODULE,
        "--queues",
        names.QUEUE[stage],
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--worker-shutdown-timeout",
        str(int(shutdown_timeout_s * 1000)),
        "--skip-logging",
    ]


def stage_env(stage: Stage, threads: int) -> dict[str, str]:
    """The prefetch is the stage's local cap: a worker holds no more messages than it can run, so a free
    slot anywhere takes the next message at once. ``STAGE_ENV`` tells ``actors.app`` who started it."""
    return {"dramatiq_queue_prefetch": str(threads), STAGE_ENV: stage.value}
