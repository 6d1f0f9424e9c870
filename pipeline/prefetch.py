"""Warm the job's segment cache for the next slots while a clip encodes (hides the CDN's round trips).

Clip messages of a job are queued in slot order, so the next clips a worker
takes are the following slots. Once a clip's own segments are local,
``after_fetch`` hands slots ``index+1 .. index+N`` (``CLIPLINE_PREFETCH_SLOTS``,
0: off) to a per-process pool (as many threads as the process cuts clips at once)
that fetches exactly the segments each of those windows needs
(``hls.select_segments``) into the shared cache. It never fetches more than
the clips would (bytes stay at the needed segments): a segment already there,
or being fetched by a clip or another prefetch (the cache's Redis lock, which a
prefetch never waits for), is not fetched again. A slot already cut, a job
whose work directory is gone (finished, cancelled), or any error is skipped
silently: the clip itself fetches what it needs as before.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from . import files
from .context import Context, JobView
from .hls import select_segments

log = logging.getLogger(__name__)

#: Prefetches running at once in one worker process (each fetches one window's segments side by side):
#: as many as the clips the process cuts at once, at least this many, so the warming keeps pace with
#: the clips when a clip costs less CPU time than its segments take to arrive.
MIN_WORKERS = 2

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_queued: set[tuple[str, int]] = set()


def _executor(ctx: Context) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            workers = max(MIN_WORKERS, ctx.settings.render_clip_concurrency)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch")
        return _pool


def pending() -> int:
    """Prefetches queued or running in this process."""
    with _lock:
        return len(_queued)


def slots_after(view: JobView, index: int, ahead: int) -> list[int]:
    """The slots to warm after ``index``: the next ``ahead`` ones of the job."""
    return list(range(index + 1, min(len(view.slots), index + 1 + ahead)))


def after_fetch(ctx: Context, view: JobView, index: int) -> None:
    """Queue the next slots' segments for fetching in the background; returns at once."""
    for j in slots_after(view, index, ctx.settings.prefetch_slots):
        key = (view.job_id, j)
        with _lock:
            if key in _queued:
                continue
            _queued.add(key)
        _executor(ctx).submit(_warm, ctx, view, j)


def _warm(ctx: Context, view: JobView, index: int) -> None:
    """Fetch slot ``index``'s segments into the job's cache (their bytes are counted by the clip)."""
    try:
        if not files.job_work_dir(ctx.settings, view.job_id).is_dir():
            return  # the job ended: its files were swept
        if files.clip_path(ctx.settings, view.job_id, index).exists():
            return
        req, slot = view.request, view.slots[index]
        clip = req.lines[index].clip
        playlist = ctx.resolver.source_for(
            view.job_id, clip.video_id, clip.hls_url, req.output.rendition_height
        )
        need_ms = min(clip.duration_ms, -(-slot.frames * 1000 // slot.fps))
        segments = select_segments(playlist, clip.start_ms, clip.start_ms + need_ms)
        if not any(s.gap for s in segments):
            ctx.segments.fetch(view.job_id, clip.video_id, segments, prefetch=True)
    except Exception as exc:  # noqa: BLE001 - a prefetch never fails a clip: the clip fetches again
        log.debug("prefetch of %s:%s skipped: %s", view.job_id, index, exc)
    finally:
        with _lock:
            _queued.discard((view.job_id, index))
