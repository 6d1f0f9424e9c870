"""assemble_render: concatenate, mux the song, write final.mp4 and report.json (once per job)."""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage

from pipeline import assembly, heartbeat
from pipeline.errors import SourceUnavailable, infrastructure_unavailable
from pipeline.leases import LeaseTimeout
from pipeline.logs import bind_job
from pipeline.stages import Stage
from pipeline.storage import StorageUnavailable

from .runtime import context
from .sender import send

#: Retries of an assembly whose song or store failed for now (or whose song the plan stage was still
#: preparing); on the last attempt the error fails the job, naming the song or the store.
MAX_RETRIES = 3


def assemble_render(job_id: str, trace_id: str | None = None) -> None:
    ctx = context()
    message = CurrentMessage.get_current_message()
    retries = int(message.options.get("retries", 0)) if message else 0
    # The heartbeat tells the reconciler this assembly is alive; a SIGKILLed one's lock is freed at once.
    with bind_job(job_id, trace_id), heartbeat.beating(ctx.redis, job_id, Stage.ASSEMBLE):
        done = assembly.assemble(ctx, job_id, last_attempt=retries >= MAX_RETRIES)
    if isinstance(done, assembly.Deferred):  # the song is being prepared elsewhere: look again later
        send(Stage.ASSEMBLE, job_id, trace_id, delay_ms=int(done.after_s * 1000))


def retry_when(retries: int, exc: Exception) -> bool:
    """The song or the store failed for now, or Redis or the database could not be reached: retried (the
    assembly fails the job itself on its last attempt)."""
    transient = isinstance(exc, SourceUnavailable | StorageUnavailable | LeaseTimeout)
    return (transient or infrastructure_unavailable(exc)) and retries < MAX_RETRIES
