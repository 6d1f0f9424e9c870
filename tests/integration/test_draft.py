"""Draft mode end to end: ``output.quality: "draft"`` renders a quarter of the pixels, the same frames,
and says draft in report.json, the status object and the callback (the file keeps its contract name
final.mp4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipline.dev.samples import count_frames, read_frames
from pipeline.subprocesses import run

from .conftest import Stack, new_job_id
from .faultkit import init_db, small_request, submit, wait_final
from .test_lifecycle import Receiver

pytestmark = pytest.mark.integration


def size(video: Path) -> tuple[int, int]:
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height"]
    out = json.loads(run([*argv, "-of", "json", str(video)], timeout_s=30).stdout)["streams"][0]
    return int(out["width"]), int(out["height"])


def test_a_draft_renders_a_quarter_of_the_pixels_with_the_same_frames_marked_draft(stack: Stack) -> None:
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    # Given a 3-line request at 320x180, 30 fps, asked as a draft
    job_id = new_job_id("draft")
    request = small_request(stack, job_id, 3, audio=False)
    request["output"]["quality"] = "draft"
    receiver = Receiver(fail_first=0)
    request["callback_url"] = receiver.url
    try:
        submit(stack, request)
        result = wait_final(stack, job_id)
        callbacks = receiver.wait_for(1)
    finally:
        receiver.close()
    # Then the status object says draft, and the video is final.mp4 at 160x90 with every frame
    assert result["status"] == "COMPLETED" and result["quality"] == "draft"
    # and so does the callback
    assert [(c["job_id"], c["quality"]) for c in callbacks] == [(job_id, "draft")]
    final = Path(result["output_path"])
    assert final.name == "final.mp4"
    assert size(final) == (160, 90)
    assert count_frames(final) == 3 * 30
    # showing, frame by frame, the source frames a final render shows (1 s windows on whole frames)
    want = [line["clip"]["start_ms"] * 30 // 1000 + i for line in request["lines"] for i in range(30)]
    assert read_frames(final) == want
    # and report.json says draft, with the size written
    report = json.loads(Path(result["report_path"]).read_text())
    assert report["output"]["quality"] == "draft"
    assert (report["output"]["width"], report["output"]["height"]) == (160, 90)
    assert report["output"]["expected_frames"] == report["output"]["measured_frames"] == 90
