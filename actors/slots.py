"""parallel_slot numbers: the lowest free number in 0..cap-1 among this process's running clips."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SlotPool:
    def __init__(self) -> None:
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    @contextmanager
    def take(self) -> Iterator[int]:
        with self._lock:
            slot = next(i for i in range(len(self._busy) + 1) if i not in self._busy)
            self._busy.add(slot)
        try:
            yield slot
        finally:
            with self._lock:
                self._busy.discard(slot)


CLIP_SLOTS = SlotPool()
