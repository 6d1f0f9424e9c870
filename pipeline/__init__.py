"""clipline's domain: request models, timeline, sources, ffmpeg commands, stages, store. No broker here."""

from .errors import ClipLineError, JobConflict, JobNotFound, RequestInvalid
from .models import ClipOutcome, ClipRecord, JobStatus, RenderRequest, parse_request
from .settings import Settings, get_settings
from .timeline import Slot, build_slots, total_frames

__all__ = [
    "ClipLineError",
    "ClipOutcome",
    "ClipRecord",
    "JobConflict",
    "JobNotFound",
    "JobStatus",
    "RenderRequest",
    "RequestInvalid",
    "Settings",
    "Slot",
    "build_slots",
    "get_settings",
    "parse_request",
    "total_frames",
]
