"""The song in sync: songs made by other encoders and muxers (``tests/media/songs.py``) go through the
pipeline's song path (``audio.for_assembly``: probed, stream-copied or encoded) and assembly's mux
(``assembly._mux``: ``ffmpeg_args.assemble_argv`` with three real placeholder clips, 9.9 s), and every
click of the song is found in final.mp4's audio where the song's own player puts it.

Where a player puts a sample: both files are decoded to PCM by ffmpeg, the same way. An MP4 (the song
when it is one, and final.mp4) is laid out on its movie timeline from time 0, as its edit list says
(``-copyts``, and ``aresample`` filling with silence up to the first sample's time): an empty edit is
silence a player plays, the AAC priming an edit list skips is not. Other containers (MP3, Ogg, Matroska,
FLAC, WAV, ADTS) are not laid out so: they start with their first decoded sample (an MP3's LAME header
has its encoder delay dropped by the decoder; ffmpeg states that drop as the stream's start time, which
is not a delay a player plays). A click's onset is the first sample whose magnitude passes 30 % of
full scale after 0.1 s below it (the burst peaks at 0.57 of full scale once downmixed to mono,
climbing about 0.07 of it a sample where it passes the threshold).
"""

from __future__ import annotations

import array
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import assembly, audio, cutting
from pipeline.context import Context, JobView
from pipeline.models import parse_request
from pipeline.timeline import build_slots
from tests.integration.test_hls_variants import _settings
from tests.media import songs

from .conftest import CACHE

pytestmark = pytest.mark.integration

FPS = 30
LINE_MS = 3300  # three lines: a 9.9 s video (297 frames), shorter than the 10 s songs: AAC in MP4 is copied
VIDEO_S = 3 * LINE_MS / 1000
#: Onset threshold (of full scale) and the silence (in seconds) before a click.
THRESHOLD = 0.3
GAP_S = 0.1
#: How far a click may move when clipline encodes the song again to AAC (192 kb/s), in samples. Near an
#: onset the new encode's samples differ from the song's by up to 200 (0.6 % of full scale; measured on
#: every song here), while the burst climbs 2,000-2,500 a sample past the threshold: a sample that
#: passes it by less than 200 (one at 44.1 kHz passes by 171) can fall short of it after the encode,
#: the onset one sample later. Measured: 0 for every song here. Any priming or encoder delay left in,
#: doubled or dropped (AAC 1024 or 2112 samples, LAME 1105, Opus 312) is hundreds of times this. A song
#: that is stream-copied is not encoded again: the same packets decode to the same samples, tolerance 0.
REENCODED_SAMPLES = 1


def view(song: str) -> JobView:
    clip = {"video_id": "v", "start_ms": 0, "end_ms": LINE_MS, "hls_url": "http://127.0.0.1:9/x.m3u8"}
    lines = [
        {"text": f"l{i}", "start_ms": LINE_MS * i, "end_ms": LINE_MS * (i + 1), "clip": clip}
        for i in range(3)
    ]
    req = parse_request(
        {
            "job_id": f"sync-{secrets.token_hex(4)}",
            "output": {"width": 160, "height": 90, "fps": FPS},
            "lines": lines,
            "audio": {"path": song},
        },
        allowed_hosts=frozenset(),
    )
    return JobView(req, build_slots(req))


@pytest.fixture(scope="module")
def built() -> Path:
    return songs.build(CACHE.parent / "song-corpus")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> list[Path]:
    """Three black clips of 99 frames, made as clipline makes a placeholder (its clip encoder)."""
    ctx = Context(_settings(tmp_path_factory.mktemp("clips"), redis_url))
    v = view("none.m4a")
    return [Path(str(cutting.make_placeholder(ctx, v, slot.index).path)) for slot in v.slots]


@pytest.fixture
def ctx(tmp_path: Path, redis_url: str) -> Iterator[Context]:
    c = Context(_settings(tmp_path, redis_url))
    Path(c.settings.media_dir).mkdir(parents=True)
    yield c


def render(ctx: Context, song: Path, clips: list[Path]) -> tuple[Path, bool]:
    """final.mp4 of the song through the pipeline's song path and mux; True when the song was copied."""
    shutil.copy(song, Path(ctx.settings.media_dir) / song.name)
    v = view(song.name)
    track = audio.for_assembly(ctx, v)
    assert track is not None
    final = ctx.settings.work_dir / "final.mp4"
    frames = round(VIDEO_S * FPS)
    assert assembly._mux(ctx, v, clips, final, track, frames, lambda: None) == frames
    return final, track.resolve() == (Path(ctx.settings.media_dir) / song.name).resolve()


def probe(path: Path) -> dict[str, Any]:
    argv = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,sample_rate,start_time,duration"]
    argv += ["-show_entries", "format=format_name", "-of", "json", str(path)]
    out: dict[str, Any] = json.loads(
        subprocess.run(argv, capture_output=True, check=True, text=True, timeout=60).stdout
    )
    return out


def packet_times(path: Path) -> list[int]:
    """The audio packets' timestamps, in the track's time base (the sample rate, as ffmpeg writes AAC)."""
    argv = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "packet=pts",
        "-of",
        "csv=p=0",
    ]
    out = subprocess.run([*argv, str(path)], capture_output=True, check=True, text=True, timeout=60).stdout
    return [int(line.split(",")[0]) for line in out.split()]  # (a priming packet adds its side data)


def played(path: Path) -> tuple[int, array.array[int]]:
    """The sample rate and the first audio stream as mono 16-bit PCM, laid out as a player plays it."""
    info = probe(path)
    rate = int(next(s for s in info["streams"] if s["codec_type"] == "audio")["sample_rate"])
    movie = info["format"]["format_name"].startswith("mov,")
    argv = ["ffmpeg", "-nostdin", "-v", "error", *(["-copyts"] if movie else []), "-i", str(path)]
    argv += ["-map", "0:a:0", "-ac", "1"]
    if movie:  # the movie timeline from 0: silence inserted up to the first sample's time (any gap)
        argv += ["-af", "aresample=async=1:min_hard_comp=0.00001:first_pts=0"]
    argv += ["-f", "s16le", "-c:a", "pcm_s16le", "-"]
    pcm = array.array("h")
    pcm.frombytes(subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout)
    return rate, pcm


def onsets(rate: int, pcm: array.array[int]) -> list[int]:
    """The sample of each click's onset (see the module's docstring)."""
    threshold, gap = round(THRESHOLD * 32767), round(GAP_S * rate)
    found: list[int] = []
    last = -gap - 1
    for start in range(0, len(pcm), 512):  # silent blocks skipped whole (max and min run in C)
        block = pcm[start : start + 512]
        if max(block) <= threshold and min(block) >= -threshold:
            continue
        for i, x in enumerate(block, start):
            if x > threshold or -x > threshold:
                if i - last > gap:
                    found.append(i)
                last = i
    return found


@pytest.mark.parametrize("name", sorted(songs.SONGS))
def test_every_click_of_the_song_is_where_its_player_puts_it(
    name: str, built: Path, clips: list[Path], ctx: Context
) -> None:
    song = songs.SONGS[name][1]
    if why := songs.missing(song):
        pytest.skip(why)
    source = built / song.name
    rate, pcm = played(source)
    want = onsets(rate, pcm)
    assert len(want) == song.clicks, want  # the song itself, as its player plays it

    final, copied = render(ctx, source, clips)
    want = [w for w in want if w < round(VIDEO_S * rate)]  # the song is cut at the video's end

    got_rate, got_pcm = played(final)
    got = onsets(got_rate, got_pcm)
    assert got_rate == rate
    tolerance = 0 if copied else REENCODED_SAMPLES
    assert len(got) == len(want) and all(abs(g - w) <= tolerance for g, w in zip(got, want, strict=True)), (
        f"clicks at samples {got}, the song's player puts them at {want} (tolerance {tolerance})"
    )
    # The track's timestamps run with its samples: every AAC frame 1024 samples after the one before
    pts = packet_times(final)
    steps = {b - a for a, b in zip(pts, pts[1:], strict=False)}
    assert steps == {1024}, f"AAC frames {sorted(steps)} samples apart"
    # Both tracks start at 0 and the sound lasts the picture (to an AAC frame of 1024 samples beyond it)
    streams = {s["codec_type"]: s for s in probe(final)["streams"]}
    assert float(streams["audio"]["start_time"]) == 0.0 == float(streams["video"]["start_time"]), streams
    samples = round(VIDEO_S * rate)
    assert samples <= len(got_pcm) <= samples + 1024, (len(got_pcm), samples)
