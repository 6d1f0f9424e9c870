"""The timeline rule (DESIGN.md): slots tile the output with no gap, lengths in whole frames.

Slot i starts at line i's start_ms (slot 0 at 0) and ends where line i+1
starts; the last ends at the last line's end_ms. Boundaries are converted to
frames with round-half-up, and a slot's frame count is the difference of its
boundary frames, so counts add up to the total exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import RenderRequest


def frame_at(ms: int, fps: int) -> int:
    """round(ms * fps / 1000) with halves rounded up, in exact integer arithmetic."""
    return (2 * ms * fps + 1000) // 2000


@dataclass(frozen=True)
class Slot:
    index: int
    start_ms: int
    end_ms: int
    start_frame: int
    frames: int
    fps: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def build_slots(request: RenderRequest) -> list[Slot]:
    fps = request.output.fps
    lines = request.lines
    slots: list[Slot] = []
    for i, line in enumerate(lines):
        start = 0 if i == 0 else line.start_ms
        end = lines[i + 1].start_ms if i + 1 < len(lines) else line.end_ms
        first, last = frame_at(start, fps), frame_at(end, fps)
        slots.append(Slot(i, start, end, first, last - first, fps))
    return slots


def total_frames(request: RenderRequest) -> int:
    return frame_at(request.lines[-1].end_ms, request.output.fps)
