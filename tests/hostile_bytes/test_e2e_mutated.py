"""Audit E, end to end: a mutated segment or playlist on the loopback CDN, through the real clip stage
(in-process, as tests/integration/test_faults.py does) and through running workers. A clip must end in
Done, or in Fallback naming the reason as a clipline error (SourceInvalid ...), never an internal error;
the job must end in a final state in bounded time with report.json naming the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline import clipstage, planning
from tests.integration.conftest import Stack, build_request, new_job_id
from tests.integration.test_stages import make_ctx

pytestmark = pytest.mark.integration

COPIES = ("v_audite_pat", "v_audite_pat2")


@pytest.fixture(autouse=True)
def _remove_copies(samples):  # type: ignore[no-untyped-def]
    """The mutated copies are removed from the shared sample cache after each test."""
    yield
    for name in COPIES:
        shutil.rmtree(samples.root / "hls" / name, ignore_errors=True)


def mutated_copy(stack: Stack, source: str, name: str, mutate) -> str:  # type: ignore[no-untyped-def]
    """A copy of ``source``'s HLS folder on the CDN as ``name``, each segment passed through ``mutate``."""
    src = stack.samples.root / "hls" / source
    dst = stack.samples.root / "hls" / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    for seg in sorted(dst.iterdir()):
        if seg.suffix != ".m3u8":
            seg.write_bytes(mutate(seg.name, seg.read_bytes()))
    return name


def assert_exact_frames(request: dict, result: dict, report: dict, indexes: list[int]) -> None:  # type: ignore[type-arg]
    """Every frame of the ``indexes`` slots (outcome ok) is the source frame containing its time."""
    import math

    from clipline.dev.samples import read_frames
    from pipeline.models import parse_request
    from pipeline.timeline import build_slots

    req = parse_request(request)
    slots = build_slots(req)
    shown = read_frames(Path(result["output_path"]))
    for i in indexes:
        slot, line, row = slots[i], req.lines[i], report["slots"][i]
        assert row["outcome"] == "ok" and row["measured_frames"] == row["slot_frames"], row
        window_ms = min(line.clip.end_ms - line.clip.start_ms, math.ceil(slot.frames * 1000 / 30))
        i_last = min(slot.frames - 1, math.ceil(window_ms * 30 / 1000) - 1)
        want = [(line.clip.start_ms * 30 + 1000 * min(k, i_last)) // 1000 for k in range(slot.frames)]
        assert shown[slot.start_frame : slot.start_frame + slot.frames] == want, i


def one_clip(stack: Stack, video: str, start: int, ms: int = 1000):  # type: ignore[no-untyped-def]
    ctx = make_ctx(stack, CLIPLINE_HTTP_TIMEOUT_S="2")
    job_id = new_job_id("audite")
    request = build_request(
        job_id, stack.cdn, [(video, start, start + ms, True)], line_ms=lambda i: ms, audio=False
    )
    planning.fanned_out(ctx, planning.plan(ctx, request))
    return ctx, job_id


def bad_pat_pointer(name: str, data: bytes) -> bytes:
    """The first PAT packet's pointer field points past the packet (ffmpeg skips such a section)."""
    buf = bytearray(data)
    for i in range(0, len(buf), 188):
        if ((buf[i + 1] & 0x1F) << 8 | buf[i + 2]) == 0:
            buf[i + 4] = 0xB7
            break
    return bytes(buf)


def test_ts_segments_with_a_bad_first_pat_are_cut_or_refused_never_an_internal_error(stack: Stack) -> None:
    """Each segment's first PAT packet has a pointer field of 183 (points past the packet; the segment's
    later PATs are intact and ffmpeg reads the segment). The clip ends in Fallback with the reason
    "IndexError: index out of range" (logged as clip.internal_error): the cut's own TS readers
    (pipeline/parameter_sets.py:_video_pid via needs_parameter_sets, pipeline/mpegts.py:psi_section via
    from_position) index past the packet. Right: the clip is cut (Done), or Fallback with a SourceInvalid
    naming the damaged segment."""
    video = mutated_copy(stack, "v_b", "v_audite_pat", bad_pat_pointer)
    ctx, job_id = one_clip(stack, video, 4200)
    step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=1)
    if isinstance(step, clipstage.Fallback):
        assert step.reason.startswith(("SourceInvalid", "SourceNotFound")), step.reason
    else:
        assert isinstance(step, clipstage.Done), step


def test_a_job_with_a_bad_pat_segment_never_reports_an_internal_error(stack: Stack) -> None:
    """Through running workers: three lines, the middle one from a source whose segments each start with
    a PAT whose pointer field points past the packet. The job ends COMPLETED_WITH_GAPS in bounded time
    and the other lines keep their exact frames (checked), but report.json gives the missing line
    the reason "IndexError: index out of range": an internal error, not the reason (the damaged segment).
    Right: the line is cut (ffmpeg reads those segments), or its reason is a SourceInvalid naming the
    segment. Cause: pipeline/mpegts.py:psi_section/_program_tables and
    pipeline/parameter_sets.py:_video_pid index past the packet."""
    from tests.integration.faultkit import init_db, submit, wait_final

    video = mutated_copy(stack, "v_b", "v_audite_pat2", bad_pat_pointer)
    job_id = new_job_id("auditew")
    picks = [("v_a", 1000, 2000, True), (video, 4200, 5200, True), ("v_b", 1000, 2000, True)]
    request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=False)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    submit(stack, request)
    result = wait_final(stack, job_id, timeout=120)
    assert result["status"] in ("COMPLETED", "COMPLETED_WITH_GAPS"), result
    import json

    report = json.loads(Path(result["report_path"]).read_text())
    assert_exact_frames(request, result, report, [0, 2])
    middle = report["slots"][1]
    if middle["outcome"] != "ok":
        text = json.dumps(middle)
        assert "IndexError" not in text and "SourceInvalid" in text, middle


def test_fmp4_segments_with_a_trailing_truncated_box_end_without_an_internal_error(
    tmp_path: Path, redis_url: str
) -> None:
    """An fMP4 HLS source (1 s segments, a keyframe every 15 frames) whose last media segment ends with
    the 8-byte header of a box with a 64-bit size and nothing after it (a truncated download or a
    packager's junk; ffmpeg reads the segment). A window from 3.5 s starts at the run's second keyframe, so
    ``HlsInputs._fmp4_from_sample`` runs: ``fmp4.boxes`` raises ``struct.error``, which it does not
    catch, and the clip fails with "error: unpack_from requires a buffer ..." (in a worker: Fallback with
    that reason, logged as clip.internal_error). Right: the clip is cut (decoding from the run's start,
    as for any shape from_sample does not rewrite) or a SourceInvalid naming the segment.
    Cause: pipeline/fmp4.py:boxes and pipeline/hls_inputs.py:HlsInputs._fmp4_from_sample."""
    import secrets
    import struct
    import subprocess

    from clipline.dev.cdn import LoopbackCDN
    from pipeline import cutting
    from pipeline.context import Context
    from pipeline.errors import ClipLineError
    from pipeline.models import parse_request
    from pipeline.settings import load_settings

    root = tmp_path / "cdn"
    out = root / "hls" / "f"
    out.mkdir(parents=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=30:duration=5",
         "-c:v", "libx264", "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
         "-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
         "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", str(out / "s%d.m4s"),
         str(out / "index.m3u8")],
        check=True, timeout=60,
    )  # fmt: skip
    last = out / "s4.m4s"  # the source's last segment (4-5 s)
    last.write_bytes(last.read_bytes() + struct.pack(">I4s", 1, b"free"))
    settings = load_settings(
        {
            "CLIPLINE_REDIS_URL": redis_url,
            "CLIPLINE_WORK_DIR": str(tmp_path / "work"),
            "CLIPLINE_MEDIA_DIR": str(tmp_path / "media"),
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
            "CLIPLINE_HTTP_TIMEOUT_S": "5",
            "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",
        }
    )
    ctx = Context(settings)
    from pipeline.context import JobView
    from pipeline.timeline import build_slots

    with LoopbackCDN(root) as cdn:
        clip = {"video_id": "v", "start_ms": 3500, "end_ms": 4600, "hls_url": cdn.url("hls/f/index.m3u8")}
        req = parse_request(
            {
                "job_id": f"audite-{secrets.token_hex(5)}",
                "output": {"width": 160, "height": 90, "fps": 30},
                "lines": [{"text": "l0", "start_ms": 0, "end_ms": 1100, "clip": clip}],
            },
            allowed_hosts=frozenset(),
        )
        view = JobView(req, build_slots(req))
        try:
            record = cutting.cut_from_hls(ctx, view, 0)
        except ClipLineError:
            return
        assert record.path


def test_a_truncated_song_is_padded_to_the_videos_length(
    stack: Stack, tmp_path: Path
) -> None:
    """The song is an .m4a with its moov in front (faststart) declaring 40 s, cut off after a twentieth of
    its bytes (a damaged origin file, served whole with a matching Content-Length). ffprobe reads the
    header's 40 s, so ``audio._prepare`` keeps it as it is (AAC, mov, "long enough"), and assembly's
    stream copy stops at the data's end (ffmpeg logs "partial file" and exits 0). The job ends COMPLETED
    with a final.mp4 of 4 s of video and about 2 s of audio. README ("What comes out") promises the song
    "cut (or padded with silence) to the video's length". Right: a truncated song is padded (encoded with
    apad) or the job FAILS naming the song. Cause: pipeline/audio.py:_prepare trusts the container's
    declared duration (audio.probe) and skips the encode."""
    import json
    import subprocess

    from tests.integration.faultkit import init_db, submit, wait_final

    song = tmp_path / "long.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=40", "-c:a", "aac", "-movflags",
         "+faststart", str(song)],
        check=True, timeout=60,
    )  # fmt: skip
    data = song.read_bytes()
    served = stack.samples.root / "audio" / "audite-truncated.m4a"
    served.write_bytes(data[: len(data) // 20])
    try:
        job_id = new_job_id("auditesong")
        picks = [("v_a", 1000 * i, 1000 * i + 1000, True) for i in range(4)]
        request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000)
        request["audio"] = {"url": stack.cdn.url("audio/audite-truncated.m4a")}
        init_db(stack)
        stack.start_workers("--stage", "all", "--concurrency", "2")
        submit(stack, request)
        result = wait_final(stack, job_id, timeout=120)
        if result["status"] == "FAILED":
            assert "audite-truncated.m4a" in (result.get("error") or ""), result
            return
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration", "-of", "json",
             result["output_path"]],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        streams = {s["codec_type"]: float(s["duration"]) for s in json.loads(out.stdout)["streams"]}
        assert streams["audio"] >= streams["video"] - 0.05, streams
    finally:
        served.unlink(missing_ok=True)


def test_a_playlist_with_a_long_define_line_ends_its_job_at_once(stack: Stack) -> None:
    """Through running workers: a two-line job whose second line's playlist (120 KB, far under the
    4 MiB CLIPLINE_MAX_PLAYLIST_BYTES) holds one ``#EXT-X-DEFINE:`` line of capital letters. The plan
    stage's source resolution runs ``hls_variables`` ATTRIBUTE regex, quadratic in the line's length
    (minutes here, days for a 4 MiB line), holding the GIL: the job has not reached a final state 25 s
    later (a job like it without that line ends in about 10 s). Right: the playlist refused
    (SourceInvalid, the line goes to fallback) in well under a second; the job ends in bounded time.
    Cause: pipeline/hls_variables.py:_attributes (regex ATTRIBUTE)."""
    from tests.integration.faultkit import init_db, submit

    folder = stack.samples.root / "hls" / "v_audite_pat"  # removed after the test (COPIES)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-DEFINE:"
        + "A" * 120_000
        + "\n#EXTINF:2.0,\nx.ts\n#EXT-X-ENDLIST\n"
    )
    job_id = new_job_id("auditedef")
    picks = [("v_a", 1000, 2000, True), ("v_audite_pat", 0, 1000, True)]
    request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=False)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    submit(stack, request)
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    try:
        deadline = time.monotonic() + 25
        status = None
        while time.monotonic() < deadline:
            out = subprocess.run(
                [sys.executable, "-m", "clipline.cli", "status", job_id, "--json"],
                env=stack.env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if out.stdout.strip():
                status = json.loads(out.stdout.strip().splitlines()[-1]).get("status")
                if status in ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED", "CANCELLED"):
                    break
            time.sleep(1)
    finally:  # the worker is stuck inside the regex (GIL held): SIGTERM would wait 30 s
        for proc in stack.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    assert status in ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED"), f"job still {status} after 25 s"
