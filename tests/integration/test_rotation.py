"""Rotated pictures: a display matrix (the ``tkhd`` box's, as phones write it) in fMP4 HLS and in a
local MP4 copy, cut by clipline and traced frame by frame with no tolerance.

The corpus's ``fmp4_rot*`` variants (``tests/media/corpus.py``) code the upright frame-coded pattern
(160x90) and carry a matrix that turns it 90, 180 or 270 degrees clockwise when shown; ffmpeg's
command line turns decoded frames that way by default, as players do. A clip must show the picture
as shown (portrait for 90 and 270, fitted into the job's frame with its shown aspect kept) and the
frame rule's frames. ``read_frames`` reads the code band of an upright picture, so each clip is read
turned back: its picture cropped out of the padding, then turned the other way (``UNDO``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import read_frames
from pipeline import cutting
from pipeline.context import Context
from pipeline.models import ClipRecord
from tests.media import corpus

from .test_hls_variants import _picture_box, cut_context, expected, serve_corpus, view_for

pytestmark = pytest.mark.integration

#: The filter that turns a picture shown ``degrees`` clockwise back upright.
UNDO = {90: "transpose=cclock", 180: "hflip,vflip", 270: "transpose=clock"}
#: ffprobe's ``rotation`` for each (the matrix's counter-clockwise angle).
PROBED = {90: -90, 180: -180, 270: 90}
#: A 16:9 job (284x160: multiples of 2) in which a 90x160 portrait picture needs no scaling, so its
#: code band is read at the pixels it was coded at.
JOB_W, JOB_H = 284, 160
#: (source start ms, end ms, slot ms): across a segment boundary from a keyframe inside a segment
#: (its fragment rewritten: ``fmp4.from_sample``, the init section kept), and one that holds its last
#: frame past the source's end.
WINDOWS = [(1234, 2900, 1500), (2990, 4010, 1100), (5400, 7000, 1600)]


def _name(degrees: int) -> str:
    return f"fmp4_rot{degrees}"


def _job_size(degrees: int) -> tuple[int, int]:
    """The job's frame: 284x160 for a portrait picture, the source's own 160x90 for one upside down."""
    return (JOB_W, JOB_H) if degrees in (90, 270) else (corpus.W, corpus.H)


def _shown_box(degrees: int) -> tuple[int, int, int, int]:
    """Where the picture must be in the job's frame (width, height, x, y): a portrait 90x160 unscaled,
    pillarboxed from column 96 ((284 - 90) / 2 = 97, down to an even column for 4:2:0 chroma); upside
    down, the whole 160x90 frame."""
    return (corpus.H, corpus.W, 96, 0) if degrees in (90, 270) else (corpus.W, corpus.H, 0, 0)


@pytest.fixture(scope="module")
def corpus_cdn() -> Iterator[LoopbackCDN]:
    yield from serve_corpus()


@pytest.fixture
def ctx(tmp_path: Path, redis_url: str) -> Iterator[Context]:
    yield from cut_context(tmp_path, redis_url)


def _rotation(media: Path) -> int | None:
    """ffprobe's ``rotation`` of the first video stream's display matrix, None without one."""
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream_side_data=rotation"]
    out = subprocess.run([*argv, "-of", "json", str(media)], capture_output=True, text=True, check=True)
    for side in json.loads(out.stdout)["streams"][0].get("side_data_list", []):
        if "rotation" in side:
            return int(side["rotation"])
    return None


def _read_upright(video: Path, box: tuple[int, int, int, int], degrees: int, tmp: Path) -> list[int]:
    """The source frames ``video`` shows, read with its picture (``box``: width, height, x, y) cropped
    out of the padding and turned back upright (lossless in between)."""
    w, h, x, y = box
    upright = tmp / f"{video.stem}-upright.mkv"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(video)]
    argv += ["-vf", f"crop={w}:{h}:{x}:{y},{UNDO[degrees]}", "-c:v", "ffv1", str(upright)]
    subprocess.run(argv, check=True, timeout=120)
    return read_frames(upright)


def _assert_cut_as_shown(record: ClipRecord, degrees: int, want: list[int], tmp: Path) -> None:
    """The clip has no display matrix (its pixels shown as they are, as the assembler's stream copy of
    every clip shows them), its picture is where a picture shown ``degrees`` turned belongs (a portrait
    one pillarboxed at its own 90x160, not the coded landscape one filling the frame), and turned back
    upright it shows exactly ``want``."""
    clip = Path(record.path or "")
    assert _rotation(clip) is None, record.index
    assert _picture_box(clip) == _shown_box(degrees), record.index
    assert _read_upright(clip, _shown_box(degrees), degrees, tmp) == want, record.index
    assert (record.source_first_frame, record.source_last_frame) == (want[0], want[-1])


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_the_corpus_carries_the_display_matrix_and_undo_turns_what_ffmpeg_shows_upright(
    degrees: int, corpus_cdn: LoopbackCDN, tmp_path: Path
) -> None:
    # Given the rotated variant's init section and local copy, as made by the corpus (matrix patched)
    folder = corpus_cdn.root / "hls" / _name(degrees)
    # Then ffprobe reports the rotation in both, and through the HLS playlist
    assert _rotation(folder / "init.mp4") == PROBED[degrees]
    assert _rotation(folder / "local.mp4") == PROBED[degrees]
    assert _rotation(folder / "index.m3u8") == PROBED[degrees]
    # and ffmpeg's command line, decoding the local copy as a player shows it, turns the picture (to
    # 90x160 for a quarter turn), which UNDO turns back to every source frame in order: the reading
    # the other tests use is the inverse of what a player shows
    shown = tmp_path / "shown.mkv"
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(folder / "local.mp4"), "-an"]
    subprocess.run([*argv, "-c:v", "ffv1", str(shown)], check=True, timeout=120)
    width, height = (corpus.H, corpus.W) if degrees in (90, 270) else (corpus.W, corpus.H)
    assert _read_upright(shown, (width, height, 0, 0), degrees, tmp_path) == list(range(180))


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_fmp4_source_is_cut_as_shown_upright_fitted_and_frame_exact(
    degrees: int, corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given fMP4 HLS whose init section's display matrix turns the picture ``degrees`` clockwise
    variant = corpus.VARIANTS[_name(degrees)][1]
    width, height = _job_size(degrees)
    view = view_for(corpus_cdn.url(f"hls/{variant.name}/index.m3u8"), WINDOWS, height=height, width=width)
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        # When each window is cut for a 16:9 job
        record = cutting.cut_from_hls(ctx, view, slot.index)
        # Then the picture is turned in its pixels, as shown, fitted, and frame-exact
        _assert_cut_as_shown(
            record, degrees, expected(variant, line.clip.start_ms, line.clip.end_ms, slot.frames), tmp_path
        )


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_local_copy_is_cut_as_shown_upright_fitted_and_frame_exact(
    degrees: int, corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given a local MP4 copy (the fallback's source) whose display matrix turns it ``degrees`` clockwise
    variant = corpus.VARIANTS[_name(degrees)][1]
    ctx.settings.media_dir.mkdir(parents=True, exist_ok=True)
    (ctx.settings.media_dir / "v.mp4").write_bytes(
        (corpus_cdn.root / "hls" / variant.name / "local.mp4").read_bytes()
    )
    width, height = _job_size(degrees)
    view = view_for(corpus_cdn.url("hls/gone/index.m3u8"), WINDOWS, height=height, width=width)
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        # When each window is cut from it
        record = cutting.cut_from_local(ctx, view, slot.index)
        assert record is not None
        # Then the picture is turned in its pixels, as shown, fitted, and frame-exact
        _assert_cut_as_shown(
            record, degrees, expected(variant, line.clip.start_ms, line.clip.end_ms, slot.frames), tmp_path
        )
