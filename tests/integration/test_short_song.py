"""An AAC song whose container is longer than its audio stream (1 s of AAC beside a 10 s video track) is
padded like any short song: the final video's sound track lasts as long as its picture."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Stack, build_request, new_job_id
from tests.integration.faultkit import init_db, submit, wait_final
from tests.integration.hostile import HostileServer

pytestmark = pytest.mark.integration


def durations(path: str | Path) -> dict[str, float]:
    argv = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration", "-of", "json", str(path)]
    out = subprocess.run(argv, capture_output=True, check=True, text=True, timeout=60).stdout
    return {s["codec_type"]: float(s["duration"]) for s in json.loads(out)["streams"]}


def test_a_song_whose_audio_is_shorter_than_its_container_is_padded(stack: Stack, tmp_path: Path) -> None:
    song = tmp_path / "song.m4a"
    lavfi = ["-f", "lavfi", "-i", "sine=d=1", "-f", "lavfi", "-i", "color=black:s=64x64:d=10:r=5"]
    subprocess.run(
        ["ffmpeg", "-v", "error", *lavfi, "-c:a", "aac", "-c:v", "libx264", str(song)], check=True, timeout=60
    )
    assert durations(song) == {"audio": 1.0, "video": 10.0}
    init_db(stack)
    with HostileServer() as server:
        stack.start_workers("--stage", "all", "--concurrency", "2")
        job_id = new_job_id("shortsong")
        picks = [("v_a", 1000 * i, 1000 * i + 1000, True) for i in range(3)]
        request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000)
        request["audio"] = {"url": server.url(server.put("song.m4a", song.read_bytes()))}
        submit(stack, request)
        result = wait_final(stack, job_id, timeout=150)
    assert result["status"] == "COMPLETED", result
    got = durations(result["output_path"])
    assert got["audio"] >= got["video"] - 0.05, got
