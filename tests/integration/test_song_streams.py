"""Songs that ffprobe accepts but that are odd, prepared as the plan and assemble stages do: several
audio streams (the one measured is the one used), a sample rate no resampler takes (the song named)."""

from __future__ import annotations

import json
import secrets
import struct
import subprocess
from pathlib import Path

import pytest

from pipeline import audio
from pipeline.context import Context, JobView
from pipeline.errors import SourceInvalid
from pipeline.models import parse_request
from pipeline.timeline import build_slots
from tests.integration.test_hls_variants import _settings

pytestmark = pytest.mark.integration


def view(song: str) -> JobView:
    clip = {"video_id": "v", "start_ms": 0, "end_ms": 1000, "hls_url": "http://127.0.0.1:9/x.m3u8"}
    lines = [
        {"text": f"l{i}", "start_ms": 1000 * i, "end_ms": 1000 * i + 1000, "clip": clip} for i in range(3)
    ]
    req = parse_request(
        {
            "job_id": f"song-{secrets.token_hex(4)}",
            "output": {"width": 160, "height": 90, "fps": 30},
            "lines": lines,
            "audio": {"path": song},
        },
        allowed_hosts=frozenset(),
    )
    return JobView(req, build_slots(req))


@pytest.fixture
def ctx(tmp_path: Path, redis_url: str) -> Context:
    c = Context(_settings(tmp_path, redis_url))
    Path(c.settings.media_dir).mkdir(parents=True)
    return c


def test_the_prepared_track_is_the_audio_stream_that_was_probed(ctx: Context) -> None:
    # stream 0: stereo, 1 s (probe() measures it: shorter than the 3 s video, so it is encoded);
    # stream 1: 5.1, 10 s, marked default
    song = Path(ctx.settings.media_dir) / "two.mka"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=1",
            "-f",
            "lavfi",
            "-i",
            "sine=f=1000:d=10",
            "-filter_complex",
            "[0]aformat=channel_layouts=stereo[a];[1]aformat=channel_layouts=5.1[b]",
            "-map",
            "[a]",
            "-map",
            "[b]",
            "-c:a",
            "flac",
            "-disposition:a:0",
            "0",
            "-disposition:a:1",
            "default",
            str(song),
        ],
        check=True,
        timeout=60,
    )
    track = audio.prepare(ctx, view("two.mka"))
    assert track is not None
    argv = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a",
        "-show_entries",
        "stream=channels",
        "-of",
        "json",
    ]
    out = subprocess.run([*argv, str(track)], capture_output=True, check=True, text=True).stdout
    assert [s["channels"] for s in json.loads(out)["streams"]] == [2]  # was [6]: ffmpeg's pick, stream 1


def test_a_song_ffmpeg_cannot_encode_is_refused_naming_the_song(ctx: Context) -> None:
    # a WAV header with a sample rate of 2**31-1 Hz: ffprobe reads it, the AAC encode cannot resample it
    fmt = struct.pack("<HHIIHH", 1, 1, 2**31 - 1, 2**31 - 1, 2, 16)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", 8000)
        + bytes(8000)
    )
    (Path(ctx.settings.media_dir) / "rate.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(SourceInvalid, match="song 'rate.wav'.*could not be encoded"):  # was FFmpegFailed
        audio.prepare(ctx, view("rate.wav"))
