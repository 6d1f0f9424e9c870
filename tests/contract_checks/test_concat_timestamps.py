"""DESIGN.md, Timeline: slot lengths in whole frames "so the frame counts add up to the total exactly and
rounding never accumulates ... The output's length equals the last line's end, to the frame"; README:
final.mp4 is "H.264 at the requested size and frame rate, exactly `round(last_end_ms * fps / 1000)`
frames"."""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.timeline import frame_at
from tests.integration.conftest import Stack, clip, new_job_id

from .helpers import last_json

pytestmark = pytest.mark.integration

FPS, LINES, LINE_MS = 60, 30, 533  # slots of 32 frames (533.33 ms): not a whole number of milliseconds


def video_pts(path: str) -> tuple[list[int], str]:
    """The video packets' presentation timestamps in display order, and the stream's time base."""
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=time_base:packet=pts",
            "-of",
            "json",
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = json.loads(probe)
    return sorted(int(p["pts"]) for p in doc["packets"]), doc["streams"][0]["time_base"]


def test_frames_of_a_60_fps_job_sit_on_the_frame_grid(stack: Stack) -> None:
    """At 60 fps every clip boundary shifts the following frames late by up to 0.67 ms (the concat demuxer
    places each clip at its MP4 duration, which is rounded up to whole milliseconds), so over 30 lines the
    shift accumulates past a frame: frames leave the 1/60 s grid and the job fails or ends short."""
    stack.start_workers("--stage", "all", "--concurrency", "2", "--metrics-port", "0")
    job_id = new_job_id("auditc-grid")
    lines = [
        {
            "text": f"l{i}",
            "start_ms": i * LINE_MS,
            "end_ms": (i + 1) * LINE_MS,
            "clip": clip("v_a", 0, 600, stack.cdn),
        }
        for i in range(LINES)
    ]
    request = {"job_id": job_id, "output": {"width": 320, "height": 180, "fps": FPS}, "lines": lines}
    path = stack.tmp / "grid.json"
    path.write_text(json.dumps(request))
    res = stack.cli("submit", str(path), "--wait", "--json", timeout=300)
    status = last_json(res.stdout)
    expected = frame_at(LINES * LINE_MS, FPS)
    assert status["status"] == "COMPLETED", (status["status"], status["error"])
    pts, time_base = video_pts(status["output_path"])
    assert time_base == "1/90000"
    step = 90000 // FPS
    late = [(k, p - k * step) for k, p in enumerate(pts) if p != k * step]
    assert len(pts) == expected
    assert late == [], f"{len(late)} of {len(pts)} frames off the grid; last (frame, ticks late): {late[-3:]}"
