"""Following a job until it is final: a progress bar for a person, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections import Counter

from pipeline.context import Context
from pipeline.models import ClipOutcome, JobStatus
from pipeline.store import RenderJob

POLL_S = 0.5


def _clips(ctx: Context, job: RenderJob) -> str:
    """'clips 12/60 (ok 10, local 1, placeholder 1, failed 0)': from Redis while running, the record after."""
    try:
        stats = (job.metrics or {}).get("render", {}).get("clip_stats")
        if stats:
            total, counts = int(stats["total"]), [int(stats.get(o.public_name) or 0) for o in ClipOutcome]
        else:
            total = len(ctx.view(job.id).slots)
            seen = Counter(str(o.get("outcome")) for o in ctx.completion.outcomes(job.id).values())
            counts = [seen[o.value] for o in ClipOutcome]
    except Exception:  # noqa: BLE001 - a progress label is best effort
        return ""
    shown = ", ".join(f"{o.value} {n}" for o, n in zip(ClipOutcome, counts, strict=True))
    return f"clips {sum(counts)}/{total} ({shown})"


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
    last = ""
    try:
        while True:
            job = ctx.store.get(job_id)
            status = JobStatus(job.status)
            line = f"{job_id} {job.status} {_clips(ctx, job)}"
            if bar is not None:
                bar.update(task, completed=job.progress, description=line)
            elif show and f"{line} {job.progress}" != last:
                print(f"{line} {job.progress}%", file=sys.stderr, flush=True)
                last = f"{line} {job.progress}"
            if status.is_final:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout_s:g}s")
            time.sleep(POLL_S)
    finally:
        if bar is not None:
            bar.stop()
