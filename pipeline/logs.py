"""Structured logs: one JSON object per line on stdout with ts, level, event, trace_id, job_id.

``bind_job`` puts trace_id and job_id into context variables for the current
message; ``clip_event`` is the one place the ``twelvelabs.video_clip`` event is
written, so its fields stay the contract of DESIGN.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

from . import redact
from .models import ClipOutcome

CLIP_EVENT = "twelvelabs.video_clip"
#: Every clip_status of the clip event: the transitions, then the outcomes' public names.
CLIP_STATUSES = ("queued", "started", "retrying", *(o.public_name for o in ClipOutcome))


def _ensure_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict.setdefault("trace_id", None)
    event_dict.setdefault("job_id", None)
    return event_dict


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Blank signed query strings and URL passwords in every field, tracebacks included."""
    return {k: redact.deep(v) for k, v in event_dict.items()}


def configure(level: str = "INFO", *, json_output: bool = True) -> None:
    """Route structlog and stdlib logging (dramatiq, pika) through one JSON renderer on stdout."""
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _ensure_ids,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_output
        else (structlog.dev.ConsoleRenderer(colors=False))
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *pre_chain,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # tracebacks of stdlib records (Dramatiq) as text
                _redact,  # the last step before the line is written: nothing logged skips it
                renderer,
            ],
            foreign_pre_chain=[*pre_chain, structlog.stdlib.ExtraAdder()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    logging.getLogger("pika").setLevel(max(lvl, logging.WARNING))
    logging.getLogger("httpx").setLevel(max(lvl, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(lvl, logging.WARNING))


@contextmanager
def bind_job(job_id: str | None, trace_id: str | None) -> Iterator[None]:
    tokens = structlog.contextvars.bind_contextvars(job_id=job_id, trace_id=trace_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def clip_event(
    log: Any,
    *,
    job_id: str,
    index: int,
    status: str,
    parallel_slot: int | None,
    attempt: int,
    video_id: str,
    duration_ms: float | None = None,
    **extra: Any,
) -> None:
    assert status in CLIP_STATUSES, status
    fields: dict[str, Any] = {
        "clip_task_id": f"{job_id}:{index}",
        "clip_status": status,
        "parallel_slot": parallel_slot,
        "attempt": attempt,
        "video_id": video_id,
    }
    if duration_ms is not None:
        fields["duration_ms"] = round(duration_ms, 1)
    level = "warning" if status in ("retrying", "placeholder", "failed", "fallback_local") else "info"
    getattr(log, level)(CLIP_EVENT, **fields, **extra)
