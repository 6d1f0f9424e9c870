"""Fault injection for the workers of one audit test (loaded only through PYTHONPATH).

With BREAK_FANOUT_AT=<path> set, the first plan fan-out (across processes: ``<path>`` is created once)
sends clips 0 and 1, waits 2 s (the first clip starts meanwhile), then fails sending clip 2 with
``dramatiq.errors.ConnectionClosed``, as a publish does when the broker connection drops for longer than
Dramatiq's own reconnect attempts. Every later send is untouched.
"""

import os
import time

_at = os.environ.get("BREAK_FANOUT_AT")
if _at:
    import dramatiq.errors

    import actors.plan as _plan

    _orig = _plan.send
    _sent = {"n": 0, "armed": None}

    def _send(stage, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(stage).endswith("clip") or getattr(stage, "value", "") == "clip":
            if _sent["armed"] is None:
                try:
                    os.close(os.open(_at, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    _sent["armed"] = True
                except FileExistsError:
                    _sent["armed"] = False
            if _sent["armed"]:
                _sent["n"] += 1
                if _sent["n"] == 3:
                    _sent["armed"] = False
                    time.sleep(2)
                    raise dramatiq.errors.ConnectionClosed(OSError("injected: connection lost mid fan-out"))
        return _orig(stage, *args, **kwargs)

    _plan.send = _send
