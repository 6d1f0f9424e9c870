"""Fencing a clip's work by the job's attempt, as the assembly's is (``assembly._still_ours``).

A clip (or fallback) message belongs to one attempt of its job: the plan, the reconciler and a clip
sending its fallback say which (the message's ``job_attempt`` option); a message without it, queued by
an older clipline, is taken to be for the attempt the job is at when it starts. When the job ends, or
is cancelled and retried, while the clip is cut, whatever the clip made is dropped: its file never
replaces the clip of the attempt now running, its outcome is not recorded or counted, its error is
not added to the job's error log. ``check`` raises ``Superseded`` for the caller to drop it.

The check reads the job's record just before each write (clip file, sidecar and outcome); the error
line is written with a compare-and-set on the attempt (``JobStore.advance(attempt=...)``).
"""

from __future__ import annotations

from dataclasses import replace

from .context import Context, JobView
from .errors import Superseded
from .store import RenderJob


def bind(ctx: Context, view: JobView, attempt: int | None) -> JobView:
    """The view of the work for ``attempt``; None (a message without it) learns the job's attempt now."""
    if attempt is None:
        attempt = ctx.store.get(view.job_id).attempts
    return replace(view, attempt=attempt)


def check(ctx: Context, view: JobView, job: RenderJob | None = None) -> None:
    """Raise ``Superseded`` when the job ended or is at another attempt than ``view``'s (``job``: the
    record just read, else it is read now). A view without an attempt is not fenced."""
    if view.attempt is None:
        return
    job = job if job is not None else ctx.store.get(view.job_id)
    if job.job_status.is_final or job.attempts != view.attempt:
        raise Superseded(
            view.job_id, attempt=view.attempt, job_attempt=job.attempts, job_status=job.job_status.value
        )
