"""Identical work done once, with real ffmpeg, Redis and a loopback CDN, traced frame by frame.

Twin slots of one job are cut once and the others are made from that clip (copied, trimmed or
held) with exactly the frames the frame rule gives them; with the clip cache on, a second job
with the same source windows (its playlist URL signed again) cuts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import read_frames
from pipeline import clip_reuse, cutting
from pipeline.context import Context, JobView
from pipeline.models import ClipRecord
from pipeline.settings import load_settings
from tests.media import corpus

from .conftest import CACHE
from .test_hls_variants import expected, view_for

pytestmark = pytest.mark.integration

VARIANT = corpus.VARIANTS["ts"][1]


@pytest.fixture(scope="module")
def corpus_cdn() -> Iterator[LoopbackCDN]:
    root = corpus.build(CACHE.parent / "hls-corpus")
    with LoopbackCDN(root) as server:
        yield server


def context(tmp_path: Path, redis_url: str, **env: str) -> Context:
    settings = load_settings(
        {
            "CLIPLINE_REDIS_URL": redis_url,
            "CLIPLINE_WORK_DIR": str(tmp_path / "work"),
            "CLIPLINE_OUTPUT_DIR": str(tmp_path / "output"),
            "CLIPLINE_MEDIA_DIR": str(tmp_path / "media"),
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
            "CLIPLINE_HTTP_TIMEOUT_S": "5",
            "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",  # the loopback CDN
            **env,
        }
    )
    return Context(settings)


@pytest.fixture
def cuts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every cut from HLS, by slot index (the real cut runs)."""
    calls: list[int] = []
    real = cutting.cut_from_hls

    def counting(ctx: Context, view: JobView, index: int) -> ClipRecord:
        calls.append(index)
        return real(ctx, view, index)

    monkeypatch.setattr(cutting, "cut_from_hls", counting)
    return calls


def check_frames(view: JobView, records: list[ClipRecord]) -> None:
    for slot, rec in zip(view.slots, records, strict=True):
        clip = view.request.lines[slot.index].clip
        want = expected(VARIANT, clip.start_ms, clip.end_ms, slot.frames)
        assert rec.path is not None and read_frames(Path(rec.path)) == want, slot.index
        assert rec.frames == slot.frames
        assert rec.source_first_frame == want[0]
        assert rec.source_last_frame == want[-1]


def test_twin_slots_are_cut_once_with_exact_frames(
    tmp_path: Path, redis_url: str, corpus_cdn: LoopbackCDN, cuts: list[int]
) -> None:
    ctx = context(tmp_path, redis_url)
    url = corpus_cdn.url(f"hls/ts/{VARIANT.playlist}")
    # (Windows start at 0: a segment smaller than segments.HEAD_BYTES (32 KiB) is refused when only its
    # head is read, so each job first needs the whole first segment; the corpus's are 22 KB.)
    # Given four slots on one 1 s window (30 frames): 45 frames, 45 again, 21 (inside the window),
    # 60 (past it), and one slot on another window
    view = view_for(
        url,
        [(0, 1000, 1500), (0, 1000, 1500), (0, 1000, 700), (0, 1000, 2000), (2500, 3600, 1100)],
    )
    records = [clip_reuse.cut_once(ctx, view, i) for i in range(5)]
    # Then the window is cut once; the twins are copied, trimmed and held from slot 0's clip
    assert cuts == [0, 4]
    assert [(r.reused_from, r.reuse) for r in records] == [
        (None, None),
        (0, "copy"),
        (0, "trim"),
        (0, "hold"),
        (None, None),
    ]
    assert records[2].source_last_frame == 20  # trimmed inside the window: the donor's 21st frame
    check_frames(view, records)


def test_a_slot_longer_than_its_twins_clip_within_the_window_cuts_its_own(
    tmp_path: Path, redis_url: str, corpus_cdn: LoopbackCDN, cuts: list[int]
) -> None:
    ctx = context(tmp_path, redis_url)
    url = corpus_cdn.url(f"hls/ts/{VARIANT.playlist}")
    # Slot 0 shows 15 of the window's 30 frames; slot 1 needs all 30; then slot 2 (15) reuses slot 1
    view = view_for(url, [(0, 1000, 500), (0, 1000, 1000), (0, 1000, 500)])
    records = [clip_reuse.cut_once(ctx, view, i) for i in range(3)]
    assert cuts == [0, 1]
    assert [r.reused_from for r in records] == [None, None, 1]
    check_frames(view, records)


def test_the_clip_cache_serves_a_second_job_without_cutting(
    tmp_path: Path, redis_url: str, corpus_cdn: LoopbackCDN, cuts: list[int]
) -> None:
    ctx = context(tmp_path, redis_url, CLIPLINE_CLIP_CACHE_BYTES=str(50 * 2**20))
    signed = corpus_cdn.url(f"hls/ts/{VARIANT.playlist}") + "?Expires=1700000000&Signature=first"
    first = view_for(signed, [(0, 1000, 1000), (2500, 3600, 1100), (2600, 3500, 900)])
    corpus_cdn.reset_counters()
    records = [clip_reuse.cut_once(ctx, first, i) for i in range(3)]
    assert cuts == [0, 1, 2] and [r.cache for r in records] == ["miss", "miss", "miss"]
    # each segment's validator is asked once per job (slot 2 needs the segments slot 1 asked about)
    heads = [r.path for r in corpus_cdn.requests if r.method == "HEAD"]
    assert heads and len(heads) == len(set(heads))
    # A later job: the same windows, its playlist URL signed again, one slot shorter, one longer
    resigned = corpus_cdn.url(f"hls/ts/{VARIANT.playlist}") + "?Expires=1800000000&Signature=second"
    second = view_for(resigned, [(0, 1000, 1000), (2500, 3600, 700), (2500, 3600, 1600)])
    again = [clip_reuse.cut_once(ctx, second, i) for i in range(3)]
    assert cuts == [0, 1, 2]  # nothing cut again
    assert [(r.cache, r.reuse) for r in again] == [("hit", "copy"), ("hit", "trim"), ("hit", "hold")]
    assert all(r.bytes_fetched == 0 for r in again)
    check_frames(second, again)
    # A changed profile misses
    other = view_for(resigned, [(0, 1000, 1000)], height=72)
    assert clip_reuse.cut_once(ctx, other, 0).cache == "miss" and cuts == [0, 1, 2, 0]
