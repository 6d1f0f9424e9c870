"""The module the dramatiq CLI loads: ``dramatiq actors.app --queues render.clip``."""

from __future__ import annotations

from pipeline import logs
from pipeline.settings import get_settings

from .broker import setup_broker

_settings = get_settings()
logs.configure(_settings.log_level)
broker = setup_broker(_settings, with_worker_middleware=True)
