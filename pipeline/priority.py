"""Fairness between jobs: the RabbitMQ priority of a job's clip messages.

RabbitMQ delivers a queue's waiting messages highest priority first, first in first out within one
priority. The policy:

- **Fewer remaining clips first.** A job's clips get a level from the number of clips it still has to
  cut when they are sent: 1 clip -> 6, 2 -> 5, 3-4 -> 4, 5-8 -> 3, 9-16 -> 2, 17-32 -> 1, 33 or
  more -> 0. A 5-line job sent behind a 70-line job overtakes the big job's waiting clips; the clips
  the big job has already started are never interrupted.
- **Ageing.** A job's clips gain one level per ``AGE_STEP_S`` of the job's age when they are sent (at
  most ``AGE_MAX_BONUS``): the gap clips of ``clipline retry``, a plan redelivered after a crash.
- **Bounded overtaking.** A queued message keeps the priority it was sent with, so ageing alone cannot
  lift a big job's waiting clips. Instead, a new job never outranks a job that has been extracting for
  more than ``OVERTAKE_S``: its clips are sent at most at that job's level, and so queue behind it.
  A big job is overtaken only by the jobs submitted within ``OVERTAKE_S`` of it; it always finishes.

Pure functions; ``job_priority`` reads the job store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from .models import JobStatus
from .store import JobStore

#: The queues' ``x-max-priority`` (RabbitMQ advises at most 10 levels: each costs memory and CPU).
MAX_PRIORITY = 9
#: The level of a job with one clip left; each doubling of the remaining clips costs one level.
SIZE_TOP = 6
#: Ageing: one level per this many seconds of a job's age when its clips are sent ...
AGE_STEP_S = 60.0
#: ... up to this many levels.
AGE_MAX_BONUS = MAX_PRIORITY
#: A job extracting for longer than this is overtaken by no job submitted after it.
OVERTAKE_S = 120.0


def size_level(remaining_clips: int) -> int:
    """6 for one clip left, one level less per doubling, 0 from 33 clips on."""
    return max(0, SIZE_TOP - (max(1, remaining_clips) - 1).bit_length())


def clip_priority(remaining_clips: int, age_s: float = 0.0, *, overdue_levels: Iterable[int] = ()) -> int:
    """The priority (0..MAX_PRIORITY) of clip messages sent now for a job with ``remaining_clips`` to
    cut, ``age_s`` seconds after it was submitted, while jobs extracting for longer than
    ``OVERTAKE_S`` wait with their clips at ``overdue_levels``."""
    level = size_level(remaining_clips) + min(AGE_MAX_BONUS, int(max(0.0, age_s) // AGE_STEP_S))
    level = min([level, *overdue_levels])
    return max(0, min(MAX_PRIORITY, level))


def job_priority(store: JobStore, job_id: str, remaining_clips: int, *, now: datetime | None = None) -> int:
    """``clip_priority`` for ``job_id``'s clips sent now: its age from its record, the overdue jobs from
    the jobs extracting (their clips' level recomputed from their line count, as at their fan-out)."""
    now = now or datetime.now(UTC)
    job = store.get(job_id)
    age_s = (now - _aware(job.created_at)).total_seconds()
    overdue = [
        size_level(len(other.request.get("lines") or []))
        for other in store.list(status=JobStatus.EXTRACTING, limit=500)
        if other.id != job_id
        and _aware(other.created_at) < _aware(job.created_at)
        and (now - _aware(other.created_at)).total_seconds() > OVERTAKE_S
    ]
    return clip_priority(remaining_clips, age_s, overdue_levels=overdue)


def _aware(when: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)
