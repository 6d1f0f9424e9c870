"""Following a job until it is final: a progress bar for a person, plain lines otherwise."""

from __future__ import annotations

import sys
import time

from pipeline.context import Context
from pipeline.models import JobStatus

POLL_S = 0.5


def _clips(ctx: Context, job_id: str) -> str:
    try:
        done = ctx.completion.done_count(job_id)
        total = len(ctx.view(job_id).slots)
    except Exception:  # noqa: BLE001 - a progress label is best effort
        return ""
    return f"clips {done}/{total}"


def wait_for(ctx: Context, job_id: str, *, show: bool, timeout_s: float | None = None) -> JobStatus:
    """Poll the job until it is final (or ``timeout_s`` passes: TimeoutError)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    bar = None
    if show and sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            transient=False,
        )
        bar.start()
        task = bar.add_task(job_id, total=100)
    last: tuple[str, int] | None = None
    try:
        while True:
            job = ctx.store.get(job_id)
            status = JobStatus(job.status)
            if bar is not None:
                bar.update(
                    task, completed=job.progress, description=f"{job_id} {job.status} {_clips(ctx, job_id)}"
                )
            elif show and (job.status, job.progress) != last:
                print(f"{job_id} {job.status} {job.progress}%", file=sys.stderr, flush=True)
                last = (job.status, job.progress)
            if status.is_final:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout_s:g}s")
            time.sleep(POLL_S)
    finally:
        if bar is not None:
            bar.stop()
