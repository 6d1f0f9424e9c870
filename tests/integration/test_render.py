"""End to end through real RabbitMQ, Redis, SQLite/PostgreSQL, ffmpeg and a loopback HLS CDN."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pika
import pytest

from clipline.dev.samples import count_frames, read_frames
from pipeline.hls import MediaPlaylist, parse_playlist, select_segments
from pipeline.models import parse_request
from pipeline.timeline import build_slots, total_frames

from .conftest import Stack, build_request, new_job_id

pytestmark = pytest.mark.integration

LINE_MS = [1200, 900, 1500, 700, 1100, 1300, 1000, 1600]


def line_ms(i: int) -> int:
    return LINE_MS[i % len(LINE_MS)]


def mixed_picks() -> list[tuple[str, int, int, bool]]:
    """24 lines: v_a by hls_url v_b via the API, v_local on disk only, v_gone nowhere."""
    picks: list[tuple[str, int, int, bool]] = []
    for i in range(24):
        if i in (5, 17):
            picks.append(("v_local", 1000 + i * 100, 2500 + i * 100, False))
        elif i in (9, 20):
            picks.append(("v_gone", 0, 1000, False))
        elif i % 3 == 1:
            start = (i * 700) % 9000
            picks.append(("v_b", start, start + 800 + (i % 4) * 300, False))  # some shorter than their slot
        else:
            start = (i * 1300) % 16000 + 33
            picks.append(("v_a", start, start + 1000 + (i % 5) * 250, True))
    return picks


def needed_segment_bytes(stack: Stack, request: dict[str, Any]) -> int:
    """Bytes of the distinct segments overlapping the windows the job shows (the on-demand minimum)."""
    req = parse_request(request)
    slots = build_slots(req)
    needed: set[Path] = set()
    for slot, line in zip(slots, req.lines, strict=True):
        folder = stack.samples.root / "hls" / line.clip.video_id
        if not folder.exists():
            continue
        playlist = parse_playlist(
            (folder / "index.m3u8").read_text(), f"http://x/hls/{line.clip.video_id}/i.m3u8"
        )
        assert isinstance(playlist, MediaPlaylist)
        need_ms = min(line.clip.end_ms - line.clip.start_ms, math.ceil(slot.frames * 1000 / slot.fps))
        for seg in select_segments(playlist, line.clip.start_ms, line.clip.start_ms + need_ms):
            needed.add(folder / seg.uri.rsplit("/", 1)[1])
    return sum(p.stat().st_size for p in needed)


def submit_and_wait(
    stack: Stack, request: dict[str, Any], timeout: float = 240
) -> tuple[int, dict[str, Any]]:
    path = stack.tmp / f"{request['job_id']}.json"
    path.write_text(json.dumps(request, ensure_ascii=False))
    done = stack.cli("submit", str(path), "--wait", "--json", timeout=timeout)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def test_mixed_job_renders_with_gaps_exact_frames_and_minimal_bytes(stack: Stack) -> None:
    # Given a 24-line job over two CDN videos, one local-only video and one gone everywhere
    stack.cdn.reset_counters()
    stack.start_workers("--stage", "all", "--concurrency", "4")
    job_id = new_job_id("mixed")
    request = build_request(job_id, stack.cdn, mixed_picks(), line_ms=line_ms)

    # When it is submitted and waited for
    code, result = submit_and_wait(stack, request)

    # Then the video is whole, with gaps reported
    assert code == 0, result
    assert result["status"] == "COMPLETED_WITH_GAPS" and result["progress"] == 100
    final = Path(result["output_path"])
    assert final == stack.tmp / "output" / job_id / "final.mp4"
    req = parse_request(request)
    expected_frames = total_frames(req)
    assert expected_frames == round(req.lines[-1].end_ms * 30 / 1000)
    assert count_frames(final) == expected_frames

    report = json.loads(Path(result["report_path"]).read_text())
    outcomes = [s["outcome"] for s in report["slots"]]
    for i, (vid, *_rest) in enumerate(mixed_picks()):
        want = {"v_local": "local", "v_gone": "placeholder"}.get(vid, "ok")
        assert outcomes[i] == want, (i, vid, report["slots"][i])
    gone = [g for g in report["summary"]["missing_footage"] if g["video_id"] == "v_gone"][0]
    assert [x["index"] for x in gone["lines"]] == [9, 20] and "404" in gone["reason"]
    assert [x["line"] for x in gone["lines"]] == [10, 21]  # the lyric lines a person counts, from 1
    assert f"clipline retry {result['job_id']}" in gone["action"]
    assert all(s["measured_frames"] == s["slot_frames"] for s in report["slots"])

    # One video API call per video that needed one; v_a came with its hls_url
    assert stack.cdn.api_calls == Counter({"v_b": 1, "v_local": 1, "v_gone": 1})

    # Only the segments overlapping the windows were fetched, each once
    served = stack.cdn.total_bytes("/hls/")
    needed = needed_segment_bytes(stack, request)
    ratio = served / needed
    print(f"\nbytes fetched {served}, needed segments {needed}, ratio {ratio:.3f}")
    assert ratio <= 1.2

    # Frame-exact: every frame of every ok or local slot is the source frame containing its time
    # (start + min(i, i_last) / 30 s), read back from the final video; the report names the range
    slots = build_slots(req)
    shown = read_frames(final)
    for slot, line, outcome, row in zip(slots, req.lines, outcomes, report["slots"], strict=True):
        if outcome not in ("ok", "local"):
            continue
        window_ms = min(line.clip.end_ms - line.clip.start_ms, math.ceil(slot.frames * 1000 / 30))
        i_last = min(slot.frames - 1, math.ceil(window_ms * 30 / 1000) - 1)
        want = [(line.clip.start_ms * 30 + 1000 * min(i, i_last)) // 1000 for i in range(slot.frames)]
        got = shown[slot.start_frame : slot.start_frame + slot.frames]
        assert got == want, (slot.index, outcome)
        assert (row["source_first_frame"], row["source_last_frame"]) == (want[0], want[-1])

    # The record holds the stats; temporary files are gone, the clips stay for a retry of the gaps
    stats = result["clip_stats"]
    counts = (stats["total"], stats["succeeded"], stats["fallback_local"], stats["placeholder"])
    assert counts == (24, 20, 2, 2)
    assert 1 <= stats["peak_concurrency"] <= 4 and stats["bytes_fetched"] > 0
    assert stats["p95_extract_ms"] is not None and stats["duplicate_segments"] > 0
    work = stack.tmp / "work" / job_id
    assert sorted(p.name for p in work.iterdir()) in (["audio", "clips"], ["clips"])
    assert not list(work.rglob("*.ts")) and len(list((work / "clips").glob("*.mp4"))) == 24

    # Every clip logged exactly one final status, with the contract's fields
    finals = [
        e
        for e in stack.events("twelvelabs.video_clip")
        if e["clip_status"] in ("succeeded", "fallback_local", "placeholder", "failed")
        and e["job_id"] == job_id
    ]
    assert sorted(int(e["clip_task_id"].split(":")[1]) for e in finals) == list(range(24))
    assert all(e["trace_id"] == request["trace_id"] for e in finals)
    assert len(stack.job_finished(job_id)) == 1
    assert stack.actor_errors() == []


def test_duplicate_clip_messages_neither_count_twice_nor_assemble_twice(stack: Stack) -> None:
    from actors.sender import Sender
    from pipeline.settings import load_settings
    from pipeline.stages import Stage

    stack.start_workers("--stage", "all", "--concurrency", "3")
    job_id = new_job_id("dup")
    picks = [("v_a", 500 * i, 500 * i + 1000, True) for i in range(8)]
    request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=False)
    path = stack.tmp / "dup.json"
    path.write_text(json.dumps(request))
    assert stack.cli("submit", str(path)).returncode == 0
    # Every clip message is delivered twice more, while the job runs
    send = Sender(load_settings(stack.env))
    for _ in range(2):
        for i in range(8):
            send(Stage.CLIP, job_id, i, request["trace_id"])
    done = stack.cli("status", job_id, "--watch", "--json", timeout=240)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "COMPLETED", result
    assert count_frames(Path(result["output_path"])) == 8 * 30
    assert result["clip_stats"]["total"] == 8 and result["clip_stats"]["succeeded"] == 8
    time.sleep(2)  # let the duplicates that arrive after the end be consumed
    finals = Counter(
        e["clip_task_id"]
        for e in stack.events("twelvelabs.video_clip")
        if e["clip_status"] == "succeeded" and e["job_id"] == job_id
    )
    assert finals == Counter({f"{job_id}:{i}": 1 for i in range(8)})
    assert len(stack.job_finished(job_id)) == 1


def queue_depth(stack: Stack, queue: str) -> int:
    params = pika.URLParameters(stack.env["CLIPLINE_BROKER_URL"])
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        try:
            return int(ch.queue_declare(queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker:
            return 0
    finally:
        if conn.is_open:
            conn.close()


def test_submission_is_idempotent_and_bad_input_enqueues_nothing(stack: Stack) -> None:
    job_id = new_job_id("idem")
    request = build_request(
        job_id, stack.cdn, [("v_a", 0, 1000, True)] * 3, line_ms=lambda i: 1000, audio=False
    )
    before = queue_depth(stack, "render.plan")

    # Bad input: exit 2, the field named, nothing enqueued
    bad = dict(request, lines=[dict(request["lines"][0], end_ms=0)])
    res = stack.cli("submit", "-", input_json=bad)
    assert res.returncode == 2 and "lines[0]" in res.stderr
    escape = dict(request, job_id="../../etc")
    res = stack.cli("submit", "-", input_json=escape)
    assert res.returncode == 2 and "job_id" in res.stderr
    # Every problem is named, each with its field path
    both = dict(escape, lines=bad["lines"])
    res = stack.cli("submit", "-", input_json=both)
    assert res.returncode == 2 and "job_id: " in res.stderr and "lines[0].end_ms: " in res.stderr
    assert queue_depth(stack, "render.plan") == before

    # A good one renders once; submitting it again returns the same job
    stack.start_workers("--stage", "all", "--concurrency", "2")
    first = stack.cli("submit", "-", "--wait", "--json", input_json=request)
    assert first.returncode == 0, first.stderr
    again = stack.cli("submit", "-", "--wait", "--json", input_json=request)
    assert again.returncode == 0 and "already exists" in again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["job_id"] == job_id
    # The same id with another body is refused
    other = dict(request, lines=request["lines"][:2])
    res = stack.cli("submit", "-", input_json=other)
    assert res.returncode == 2 and "different request body" in res.stderr
    assert len(stack.job_finished(job_id)) == 1
    assert len([e for e in stack.events("plan.ready") if e["job_id"] == job_id]) == 1


def test_clip_worker_refuses_to_start_without_ffmpeg(stack: Stack) -> None:
    stack.env["CLIPLINE_FFMPEG"] = "/nonexistent/ffmpeg"
    res = stack.cli("worker", "--stage", "clip", timeout=60)
    assert res.returncode == 2 and "ffmpeg not found" in res.stderr and "CLIPLINE_FFMPEG" in res.stderr


def test_a_job_on_postgresql_with_the_song_from_the_media_dir(stack: Stack, pg_url: str) -> None:
    stack.env["CLIPLINE_DATABASE_URL"] = pg_url
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("pg")
    picks = [("v_a", 2000 * i + 100, 2000 * i + 1500, True) for i in range(4)]
    request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1100, audio=False)
    song = stack.samples.media_dir / "songs"
    song.mkdir(exist_ok=True)
    (song / "song.m4a").write_bytes(stack.samples.song.read_bytes())
    request["audio"] = {"path": "songs/song.m4a"}
    code, result = submit_and_wait(stack, request)
    assert code == 0 and result["status"] == "COMPLETED", result
    final = Path(result["output_path"])
    assert count_frames(final) == 4 * 33
    probe = json.loads(stack.cli("status", job_id, "--json").stdout.splitlines()[-1])
    assert probe["status"] == "COMPLETED" and probe["clip_stats"]["succeeded"] == 4
    from pipeline.subprocesses import run

    streams = run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,duration",
            "-of",
            "json",
            str(final),
        ],
        timeout_s=30,
    ).stdout
    kinds = {s["codec_type"]: s for s in json.loads(streams)["streams"]}
    assert kinds["audio"]["codec_name"] == "aac" and kinds["video"]["codec_name"] == "h264"
    assert abs(float(kinds["audio"]["duration"]) - 4 * 1.1) < 0.1
