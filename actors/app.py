"""The module the dramatiq CLI loads in each stage command that ``clipline worker`` starts.

Run by hand (``dramatiq actors.app``) it refuses to start: that command would run without the stage's
prefetch cap, the metrics endpoint, the sweeper (reconcile, retention, webhook retries) and the
supervisor that restarts a dead stage. ``clipline worker --stage STAGE`` is the one way to run workers.
"""

from __future__ import annotations

import os
import sys

from pipeline import logs
from pipeline.settings import get_settings

from .broker import setup_broker
from .command import REFUSAL, STAGE_ENV

if not os.environ.get(STAGE_ENV):
    print(REFUSAL, file=sys.stderr, flush=True)
    raise SystemExit(2)

_settings = get_settings()
logs.configure(_settings.log_level)
broker = setup_broker(_settings, with_worker_middleware=True)
