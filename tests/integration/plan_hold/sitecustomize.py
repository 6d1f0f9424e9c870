"""Fault injection for one plan worker of a test (test code, loaded only through PYTHONPATH).

With HOLD_PLAN_AT=<path> set, the plan actor is held between ``planning.plan`` (job row PLANNING,
plan lock taken) and its fan-out (``priority.job_priority`` is the first call after the plan): it
touches ``<path>.reached`` and waits while ``<path>`` exists, so a test can SIGKILL it right there.
"""

import os
import time

_hold = os.environ.get("HOLD_PLAN_AT")
if _hold:
    from pipeline import priority as _priority

    _orig = _priority.job_priority

    def _held(*args, **kwargs):  # type: ignore[no-untyped-def]
        open(_hold + ".reached", "w").close()
        while os.path.exists(_hold):
            time.sleep(0.05)
        return _orig(*args, **kwargs)

    _priority.job_priority = _held
