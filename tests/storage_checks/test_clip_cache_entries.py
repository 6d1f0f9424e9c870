"""Outside audit G (each test failed on the code before its fix).

the cross-job clip cache meets entries that are corrupted or truncated on disk.

The harness drives ``clip_reuse._cached_or_cut`` with a stub context (file store under tmp), the cache
key forced, and the cut from HLS replaced by a stub that records that it was called and writes a
good clip: what a miss should do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline import clip_reuse, cutting, files
from pipeline.clip_cache import ClipCache
from pipeline.models import ClipOutcome, ClipRecord
from tests.stubs import stub_context

KEY = hashlib.sha256(b"audit-g").hexdigest()
FRAMES = 30
GOOD = b"GOOD-CLIP" * 1000


def view(job_id: str = "jobg1") -> Any:
    clip = SimpleNamespace(video_id="v_a", duration_ms=1000, hls_url=None, start_ms=0, end_ms=1000)
    req = SimpleNamespace(lines=[SimpleNamespace(clip=clip)], output=SimpleNamespace(fps=30))
    slot = SimpleNamespace(index=0, frames=FRAMES, fps=30, duration_ms=1000)
    return SimpleNamespace(job_id=job_id, request=req, slots=[slot])


def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[int]]:
    ctx = stub_context(tmp_path, CLIPLINE_CLIP_CACHE_BYTES=str(50 * 2**20))
    cuts: list[int] = []

    def fake_cut(ctx: Any, v: Any, index: int) -> ClipRecord:
        cuts.append(index)
        final = files.clip_path(ctx.settings, v.job_id, index)
        final.parent.mkdir(parents=True, exist_ok=True)
        final.write_bytes(GOOD)
        return ClipRecord(
            index=index,
            outcome=ClipOutcome.OK,
            path=str(final),
            video_id="v_a",
            extract_ms=1.0,
            frames=FRAMES,
            drift_ms=0.0,
            source_first_frame=0,
            source_last_frame=FRAMES - 1,
        )

    monkeypatch.setattr(cutting, "cut_from_hls", fake_cut)
    monkeypatch.setattr(clip_reuse, "_key", lambda ctx, v, i: KEY)
    return ctx, cuts


def entry_dir(ctx: Any) -> Path:
    return ClipCache(ctx.settings.clip_cache_root, ctx.settings.clip_cache_bytes)._dir(KEY)


def fill(ctx: Any, tmp_path: Path, clip: bytes, meta: dict[str, Any]) -> None:
    src = tmp_path / "src.mp4"
    src.write_bytes(clip)
    cache = ClipCache(ctx.settings.clip_cache_root, ctx.settings.clip_cache_bytes)
    assert cache.put(KEY, src, meta)


def test_a_truncated_cached_clip_is_a_miss_and_cut_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache entry whose clip.mp4 was truncated on disk (a crash of the disk, an fs repair, a
    partial copy of the cache directory) is taken as a hit and, by the 'copy' derivation, hard-linked
    as the slot's clip and recorded OK with the entry's frame count: nothing verifies the bytes
    (clip_reuse._derived, how == 'copy': ``frames = int(donor['frames'])``; ClipCache keeps no size or
    hash in meta.json). The job then assembles from a broken clip (or fails the whole assembly).
    Right: an entry whose clip does not match what was stored (size/hash in meta, or a frame count
    check as for a fresh cut) is a miss: the slot is cut from the source, the entry replaced."""
    ctx, cuts = harness(tmp_path, monkeypatch)
    # Given an entry stored whole, then truncated on disk to its first 100 bytes
    fill(ctx, tmp_path, GOOD, {"frames": FRAMES, "source_first_frame": 0, "source_last_frame": 29})
    clip = entry_dir(ctx) / "clip.mp4"
    with open(clip, "r+b") as fh:
        fh.truncate(100)
    # When a job cuts the same window
    record = clip_reuse._cached_or_cut(ctx, view(), 0)
    published = files.clip_path(ctx.settings, "jobg1", 0)
    # Then the slot's clip must be the whole clip (cut again), not the truncated entry
    assert published.read_bytes() == GOOD, (
        f"slot published {published.stat().st_size} bytes from a truncated entry as "
        f"outcome={record.outcome} cache={record.cache!r} frames={record.frames}; cuts={cuts}"
    )


@pytest.mark.parametrize(
    "meta",
    [{}, {"frames": "thirty"}, {"frames": None}, ["frames", 30]],
    ids=["no-frames", "frames-not-a-number", "frames-null", "not-an-object"],
)
def test_a_corrupted_meta_json_is_a_miss_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meta: Any
) -> None:
    """meta.json that parses as JSON but is not the shape clipline writes (an entry of another
    version, a hand-edited or damaged file) makes ``_cached_or_cut`` raise KeyError/TypeError/
    ValueError: ``int(entry.meta['frames'])`` is evaluated outside the try that turns a bad entry into
    a miss (clip_reuse._cached_or_cut), and ClipCache.get returns any JSON value as meta. The slot
    then errors (retried, then a fallback/placeholder) although the source is fine, and every later
    job that cuts that window fails the same way: put() never replaces the entry since nothing
    reaches it. Right: such an entry is a miss (``clip.cache_entry_failed``), the slot is cut from the
    source and the entry replaced."""
    ctx, cuts = harness(tmp_path, monkeypatch)
    fill(ctx, tmp_path, GOOD, {"frames": FRAMES})
    (entry_dir(ctx) / "meta.json").write_text(json.dumps(meta))
    try:
        record = clip_reuse._cached_or_cut(ctx, view(), 0)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"a damaged cache entry crashed the cut: {type(exc).__name__}: {exc}")
    assert record.outcome == ClipOutcome.OK and cuts == [0]
