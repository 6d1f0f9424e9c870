"""The dramatiq command line that runs one stage: its queue, processes, threads and prefetch."""

from __future__ import annotations

import sys

from pipeline.stages import Stage

from . import names

#: The module the dramatiq CLI loads: it builds the broker and registers the actors.
APP_MODULE = "actors.app"


def stage_argv(stage: Stage, *, processes: int, threads: int) -> list[str]:
    """``python -m dramatiq actors.app --queues render.<stage> ...``: one stage per command."""
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
        "--skip-logging",
    ]


def stage_env(threads: int) -> dict[str, str]:
    """The prefetch is the stage's local cap: a worker holds no more messages than it can run, so a free
    slot anywhere takes the next message at once."""
    return {"dramatiq_queue_prefetch": str(threads)}
