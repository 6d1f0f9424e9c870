"""The worker process's context, built on first use (never at import)."""

from __future__ import annotations

import threading

from pipeline.context import Context
from pipeline.observe import Observer
from pipeline.settings import get_settings

_ctx: Context | None = None
_lock = threading.Lock()


def context() -> Context:
    global _ctx
    if _ctx is None:
        with _lock:
            if _ctx is None:
                _ctx = Context(get_settings(), observer=_observer())
    return _ctx


def _observer() -> Observer:
    from .metrics import PrometheusObserver

    return PrometheusObserver()
