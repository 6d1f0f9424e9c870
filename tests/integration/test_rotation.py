"""Rotated and mirrored pictures: a display matrix (the ``tkhd`` box's, as phones write it) in fMP4
HLS and in a local MP4 copy, cut by clipline and traced frame by frame with no tolerance.

The corpus's oriented variants (``tests/media/corpus.py``: ``fmp4_rot90``, ``fmp4_hflip``, ...) code
the upright frame-coded pattern (160x90) and carry a matrix that turns it 90, 180 or 270 degrees
clockwise when shown, mirrors it (left to right, as a selfie camera's picture is shown, or upside
down), or mirrors it across a diagonal (``transpose``, ``antitranspose``: a mirror and a quarter turn
in one); ffmpeg's command line turns and mirrors decoded frames that way by default, as players do. A
clip must show the picture as shown (portrait for a quarter turn or a diagonal mirror, fitted into the
job's frame with its shown aspect kept) and the frame rule's frames. ``read_frames`` reads the code
band of an upright picture, so each clip is read turned back: its picture cropped out of the padding,
then turned and mirrored the other way (``UNDO``; a mirror is its own inverse).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import TraceError, read_frames
from pipeline import cutting
from pipeline.context import Context
from pipeline.models import ClipRecord
from tests.media import corpus

from .test_hls_variants import _picture_box, cut_context, expected, serve_corpus, view_for

pytestmark = pytest.mark.integration

#: The oriented variants, by the name of their display matrix (``corpus.DISPLAY_MATRICES``).
ORIENTATIONS = [v.orientation for _, v in corpus.VARIANTS.values() if v.orientation]
#: The filter that turns a picture shown in each orientation back upright: a turn the other way; a
#: mirror (hflip, vflip; transpose, ``cclock_flip``, mirroring across the main diagonal, and
#: antitranspose, ``clock_flip``, across the other) undone by itself. The corpus's test proves each
#: right and the only one of these that reads the source from what a player shows.
UNDO = {
    "upright": "null",
    "rot90": "transpose=cclock",
    "rot180": "hflip,vflip",
    "rot270": "transpose=clock",
    "hflip": "hflip",
    "vflip": "vflip",
    "transpose": "transpose=cclock_flip",
    "antitranspose": "transpose=clock_flip",
}
#: ffprobe's ``rotation`` for each (the matrix's counter-clockwise angle, a mirror's left out: hflip's
#: is rot180's, vflip's 0).
PROBED = {
    "rot90": -90,
    "rot180": -180,
    "rot270": 90,
    "hflip": -180,
    "vflip": 0,
    "transpose": -90,
    "antitranspose": 90,
}
#: A 16:9 job (284x160: multiples of 2) in which a 90x160 portrait picture needs no scaling, so its
#: code band is read at the pixels it was coded at.
JOB_W, JOB_H = 284, 160
#: (source start ms, end ms, slot ms): across a segment boundary from a keyframe inside a segment
#: (its fragment rewritten: ``fmp4.from_sample``, the init section kept), and one that holds its last
#: frame past the source's end.
WINDOWS = [(1234, 2900, 1500), (2990, 4010, 1100), (5400, 7000, 1600)]


def _name(orientation: str) -> str:
    return f"fmp4_{orientation}"


def _portrait(orientation: str) -> bool:
    """Whether the picture is shown 90x160: its matrix swaps the axes (a quarter turn or a diagonal
    mirror), its first value (a) 0."""
    return corpus.DISPLAY_MATRICES[orientation][0] == 0


def _job_size(orientation: str) -> tuple[int, int]:
    """The job's frame: 284x160 for a portrait picture, the source's own 160x90 for one upside down
    or mirrored."""
    return (JOB_W, JOB_H) if _portrait(orientation) else (corpus.W, corpus.H)


def _shown_box(orientation: str) -> tuple[int, int, int, int]:
    """Where the picture must be in the job's frame (width, height, x, y): a portrait 90x160 unscaled,
    pillarboxed from column 96 ((284 - 90) / 2 = 97, down to an even column for 4:2:0 chroma); upside
    down or mirrored, the whole 160x90 frame."""
    return (corpus.H, corpus.W, 96, 0) if _portrait(orientation) else (corpus.W, corpus.H, 0, 0)


@pytest.fixture(scope="module")
def corpus_cdn() -> Iterator[LoopbackCDN]:
    yield from serve_corpus()


@pytest.fixture
def ctx(tmp_path: Path, redis_url: str) -> Iterator[Context]:
    yield from cut_context(tmp_path, redis_url)


def _display_matrix(media: Path) -> tuple[tuple[int, ...], int] | None:
    """The first video stream's display matrix as ffprobe reads it (its 9 values, in the order
    ``corpus.DISPLAY_MATRICES`` gives them) and ffprobe's ``rotation`` of it; None without one."""
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream_side_data"]
    out = subprocess.run([*argv, "-of", "json", str(media)], capture_output=True, text=True, check=True)
    for side in json.loads(out.stdout)["streams"][0].get("side_data_list", []):
        if side.get("side_data_type") == "Display Matrix":
            # "\n00000000: a b u\n00000001: c d v\n00000002: x y w\n": each row after its offset
            rows = [line.split(":", 1)[1].split() for line in side["displaymatrix"].splitlines() if line]
            return tuple(int(v) for row in rows for v in row), int(side["rotation"])
    return None


def _read_upright(video: Path, box: tuple[int, int, int, int], undo: str, tmp: Path) -> list[int]:
    """The source frames ``video`` shows, read with its picture (``box``: width, height, x, y) cropped
    out of the padding and turned back upright by the filter ``undo`` (lossless in between)."""
    w, h, x, y = box
    upright = tmp / f"{video.stem}-upright.mkv"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(video)]
    argv += ["-vf", f"crop={w}:{h}:{x}:{y},{undo}", "-c:v", "ffv1", str(upright)]
    subprocess.run(argv, check=True, timeout=120)
    return read_frames(upright)


def _assert_cut_as_shown(record: ClipRecord, orientation: str, want: list[int], tmp: Path) -> None:
    """The clip has no display matrix (its pixels shown as they are, as the assembler's stream copy of
    every clip shows them), its picture is where a picture shown in ``orientation`` belongs (a portrait
    one pillarboxed at its own 90x160, not the coded landscape one filling the frame), and turned back
    upright it shows exactly ``want``."""
    clip = Path(record.path or "")
    assert _display_matrix(clip) is None, record.index
    assert _picture_box(clip) == _shown_box(orientation), record.index
    assert _read_upright(clip, _shown_box(orientation), UNDO[orientation], tmp) == want, record.index
    assert (record.source_first_frame, record.source_last_frame) == (want[0], want[-1])


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_the_corpus_carries_the_display_matrix_and_undo_turns_what_ffmpeg_shows_upright(
    orientation: str, corpus_cdn: LoopbackCDN, tmp_path: Path
) -> None:
    # Given the oriented variant's init section and local copy, as made by the corpus (matrix patched)
    folder = corpus_cdn.root / "hls" / _name(orientation)
    # Then ffprobe reads the matrix in both, and through the HLS playlist, with its rotation
    carried = (corpus.DISPLAY_MATRICES[orientation], PROBED[orientation])
    assert _display_matrix(folder / "init.mp4") == carried
    assert _display_matrix(folder / "local.mp4") == carried
    assert _display_matrix(folder / "index.m3u8") == carried
    # and ffmpeg's command line, decoding the local copy as a player shows it, turns or mirrors the
    # picture (to 90x160 for a quarter turn or a diagonal mirror), which UNDO turns back to every source
    # frame in order: the reading the other tests use is the inverse of what a player shows
    shown = tmp_path / "shown.mkv"
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(folder / "local.mp4"), "-an"]
    subprocess.run([*argv, "-c:v", "ffv1", str(shown)], check=True, timeout=120)
    width, height = (corpus.H, corpus.W) if _portrait(orientation) else (corpus.W, corpus.H)
    box = (width, height, 0, 0)
    assert _read_upright(shown, box, UNDO[orientation], tmp_path) == list(range(180))
    # and no other orientation's UNDO (nor none) reads it: the reading tells a mirror from a turn and
    # from the upright picture, so a clip shown in any other orientation fails the tests below
    for other, undo in UNDO.items():
        if other != orientation:
            with contextlib.suppress(TraceError):
                assert _read_upright(shown, box, undo, tmp_path) != list(range(180)), other


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_a_rotated_or_mirrored_fmp4_source_is_cut_as_shown_fitted_and_frame_exact(
    orientation: str, corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given fMP4 HLS whose init section's display matrix turns or mirrors the picture (``orientation``)
    variant = corpus.VARIANTS[_name(orientation)][1]
    width, height = _job_size(orientation)
    view = view_for(corpus_cdn.url(f"hls/{variant.name}/index.m3u8"), WINDOWS, height=height, width=width)
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        # When each window is cut for a 16:9 job
        record = cutting.cut_from_hls(ctx, view, slot.index)
        # Then the picture is turned or mirrored in its pixels, as shown, fitted, and frame-exact
        want = expected(variant, line.clip.start_ms, line.clip.end_ms, slot.frames)
        _assert_cut_as_shown(record, orientation, want, tmp_path)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_a_rotated_or_mirrored_local_copy_is_cut_as_shown_fitted_and_frame_exact(
    orientation: str, corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given a local MP4 copy (the fallback's source) whose display matrix turns or mirrors it
    variant = corpus.VARIANTS[_name(orientation)][1]
    ctx.settings.media_dir.mkdir(parents=True, exist_ok=True)
    (ctx.settings.media_dir / "v.mp4").write_bytes(
        (corpus_cdn.root / "hls" / variant.name / "local.mp4").read_bytes()
    )
    width, height = _job_size(orientation)
    view = view_for(corpus_cdn.url("hls/gone/index.m3u8"), WINDOWS, height=height, width=width)
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        # When each window is cut from it
        record = cutting.cut_from_local(ctx, view, slot.index)
        assert record is not None
        # Then the picture is turned or mirrored in its pixels, as shown, fitted, and frame-exact
        want = expected(variant, line.clip.start_ms, line.clip.end_ms, slot.frames)
        _assert_cut_as_shown(record, orientation, want, tmp_path)
