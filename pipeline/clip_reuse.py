"""Identical work done once: a slot whose source window was already cut reuses that clip.

**Twins, within a job.** Slots of one job with the same video, source URL and source window
(the output profile is the job's) form a twin group. The first twin to arrive cuts; the others
reuse its clip. Under the frame rule, output frame ``t`` of a slot with ``n`` frames shows source
time ``start + min(t, min(n, W) - 1) / fps``, where ``W = ceil(window_ms * fps / 1000)`` is the
window's frame count. So a clip of ``have`` frames gives a slot of ``want`` frames (``derivation``):

- ``copy`` when ``want == have`` (the same file, no ffmpeg);
- ``trim`` when ``want < have``: its first ``want`` frames are exactly that slot's frames;
- ``hold`` when ``want > have`` and ``have >= W``: the window ended inside the shorter clip, so the
  extra frames all show its last frame, held;
- nothing when ``want > have`` and ``have < W`` (the longer slot shows more of the window): that
  slot cuts its own clip, which then becomes the group's donor.

``trim`` and ``hold`` re-encode the donor clip (``ffmpeg_args.retime_argv``: no fetch, no decode of
the source, no scaling). A twin waits for the group's cut on a leased Redis lock (bounded; a dead
holder frees it within seconds); when the wait runs out it cuts too (idempotent either way). The
group's donor is kept in the job's ``twins`` hash; ``ClipRecord.reused_from`` and ``reuse`` say
which slot reused which and how. A trimmed clip's ``source_last_frame`` is the donor's source frame
at the trimmed clip's last index (the donor's cut lists them all, ``ClipRecord.shown``); only a cache
entry written before that list existed leaves it null when the trim ends inside the window.

**The clip cache, across jobs** (``clip_cache``, off by default): a cut that misses is stored; a
later cut of the same source, window and profile is made from it by the same rule. A hit is
published like any clip (``clip_objects.publish``), so the S3 store works.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
import structlog

from . import clip_objects, cutting, fencing, fetch, ffmpeg_args, files, keys, leases, netguard
from .clip_cache import ClipCache, cache_key, source_identity
from .context import Context, JobView
from .errors import FFmpegFailed, FFmpegMissing, SourceError, Superseded
from .hls import select_segments
from .models import ClipOutcome, ClipRecord, Reuse
from .subprocesses import run

log = structlog.get_logger("clipline.clip")


def window_frames(view: JobView, index: int) -> int:
    """``W``: output frames the slot's source window fills at the job's fps (later frames hold)."""
    clip = view.request.lines[index].clip
    return max(1, -(-clip.duration_ms * view.request.output.fps // 1000))


def derivation(have: int, want: int, window: int) -> Reuse | None:
    """How a clip of ``have`` frames becomes a slot of ``want`` frames: copy | trim | hold | None."""
    if want == have:
        return "copy"
    if want < have:
        return "trim"
    return "hold" if have >= window else None


def twin_group(view: JobView, index: int) -> str:
    clip = view.request.lines[index].clip
    ident = [clip.video_id, clip.hls_url or "", clip.start_ms, clip.end_ms]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]


def has_twins(view: JobView, index: int, group: str) -> bool:
    """Whether another slot of the job has the same video and source window (``group``)."""
    return any(s.index != index and twin_group(view, s.index) == group for s in view.slots)


def cut_once(ctx: Context, view: JobView, index: int) -> ClipRecord:
    """The slot's clip, cut from HLS unless a twin's clip or a cache entry can make it."""
    group = twin_group(view, index)
    if not has_twins(view, index, group):
        return _cached_or_cut(ctx, view, index)
    s = ctx.settings
    wait_s = s.ffmpeg_timeout_s + 4 * s.http_timeout_s + 30
    entered = False
    try:
        with leases.held(ctx.redis, keys.job_twin_lock(view.job_id, group), wait_s=wait_s):
            entered = True
            return _twin_or_cut(ctx, view, index, group)
    except redis.exceptions.LockError:
        if entered:
            raise
        log.info("clip.twin_wait_expired", job_id=view.job_id, index=index, waited_s=wait_s)
        return _cached_or_cut(ctx, view, index)


def _twin_or_cut(ctx: Context, view: JobView, index: int, group: str) -> ClipRecord:
    job_id, slot = view.job_id, view.slots[index]
    raw = ctx.redis.hget(keys.job_twins(job_id), group)
    donor: dict[str, Any] | None = json.loads(raw) if raw else None
    if donor is not None and donor["index"] != index:
        how = derivation(donor["frames"], slot.frames, window_frames(view, index))
        if how is not None and clip_objects.exists(ctx, job_id, donor["index"]):
            return _from_twin(ctx, view, index, donor, how)
    record = _cached_or_cut(ctx, view, index)
    if record.reuse in (None, "copy") and (donor is None or record.frames > donor["frames"]):
        mine = {
            "index": index,
            "frames": record.frames,
            "source_first_frame": record.source_first_frame,
            "source_last_frame": record.source_last_frame,
            "shown": record.shown,
        }
        ctx.redis.hset(keys.job_twins(job_id), group, json.dumps(mine))
        ctx.redis.expire(keys.job_twins(job_id), keys.JOB_KEY_TTL_S)
    return record


def _scratch(ctx: Context, view: JobView, index: int) -> Path:
    clips_dir = files.clip_path(ctx.settings, view.job_id, index).parent
    clips_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{index:04d}.reuse-", dir=clips_dir))


def _from_twin(ctx: Context, view: JobView, index: int, donor: dict[str, Any], how: Reuse) -> ClipRecord:
    started = time.monotonic()
    scratch = _scratch(ctx, view, index)
    try:
        source = clip_objects.fetch(ctx, view.job_id, [donor["index"]], scratch)[donor["index"]]
        record = _derived(ctx, view, index, source, donor, how, started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record.reused_from = donor["index"]
    log.info("clip.reused", job_id=view.job_id, index=index, reused_from=donor["index"], reuse=how)
    return record


def _derived(
    ctx: Context,
    view: JobView,
    index: int,
    source: Path,
    donor: dict[str, Any],
    how: Reuse,
    started: float,
) -> ClipRecord:
    """Make the slot's clip from ``source`` (a finished clip of ``donor['frames']`` frames) and publish it."""
    slot, req = view.slots[index], view.request
    final = files.clip_path(ctx.settings, view.job_id, index)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_name(final)
    cpu_ms = 0.0
    try:
        if how == "copy":
            _link_or_copy(source, tmp)
            frames = int(donor["frames"])
        else:
            profile = ctx.profile(req)
            argv = ffmpeg_args.retime_argv(ctx.ffmpeg, source, tmp, frames=slot.frames, profile=profile)
            done = run(argv, timeout_s=ctx.settings.ffmpeg_timeout_s, tag=view.job_id)
            cpu_ms = done.cpu_ms or 0.0
            frames = ffmpeg_args.frames_from_progress(done.stdout) or cutting.count_frames(ctx, tmp)
        if frames != slot.frames:
            raise FFmpegFailed(f"clip {index} came out with {frames} frames, expected {slot.frames}")
        fencing.check(ctx, view)  # a clip of an attempt the job left never replaces the current one's
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    published = clip_objects.publish(ctx, view.job_id, index, final)
    shown = _shown(donor.get("shown"), how, slot.frames)
    keeps_end = how != "trim" or slot.frames >= window_frames(view, index)
    last = shown[-1] if shown else donor.get("source_last_frame") if keeps_end else None
    return ClipRecord(
        index=index,
        outcome=ClipOutcome.OK,
        path=published,
        video_id=req.lines[index].clip.video_id,
        extract_ms=round((time.monotonic() - started) * 1000, 1),
        frames=frames,
        drift_ms=round(frames * 1000 / slot.fps - slot.duration_ms, 3),
        source_first_frame=donor.get("source_first_frame"),
        source_last_frame=last,
        cpu_ms=round(cpu_ms, 1),
        reuse=how,
        shown=shown,
    )


def _shown(donor: list[int] | None, how: Reuse, frames: int) -> list[int] | None:
    """The source frames a clip made from the donor's shows: its first ``frames`` (copy, trim), or all
    of them with the last held (hold). None when the donor's are not known (a cache entry of before)."""
    if not donor:
        return None
    return donor[:frames] if how != "hold" else donor + donor[-1:] * (frames - len(donor))


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


# -- the cross-job cache -------------------------------------------------------------------


def _validator(ctx: Context, url: str) -> str | None:
    """The resource's ETag, else its length and ``Last-Modified`` (a HEAD request; a file replaced by
    one of the same size changes its date, which the length alone would miss); None when it has neither
    ETag nor length, or the request fails."""
    s = ctx.settings
    try:
        headers = fetch.head(url, policy=netguard.Policy.of(s), limits=fetch.segment_limits(s))
    except Exception as exc:  # noqa: BLE001 - any failure: the clip is simply not cached
        log.info("clip.cache_head_failed", url=url.split("?")[0], error=f"{type(exc).__name__}: {exc}")
        return None
    etag = headers.get("etag")
    if etag:
        return f"etag:{etag}"
    length = headers.get("content-length")
    if not length:
        return None
    modified = headers.get("last-modified")
    return f"length:{length};modified:{modified}" if modified else f"length:{length}"


#: HEAD requests one clip sends at once for its segments' validators.
PARALLEL_HEADS = 4


def _validators(ctx: Context, job_id: str, urls: list[str]) -> dict[str, str | None]:
    """Each URL's validator: from the job's memo in Redis (each URL is asked once per job, as its
    segment is fetched once per job), else a HEAD request, several at once; answers are kept."""
    memo = keys.job_validators(job_id)
    known = dict(zip(urls, ctx.redis.hmget(memo, urls), strict=True))
    out: dict[str, str | None] = {
        u: keys.text(v) for u, v in known.items() if v is not None
    }
    missing = [u for u in urls if u not in out]
    if missing:
        with ThreadPoolExecutor(max_workers=min(PARALLEL_HEADS, len(missing))) as pool:
            asked = dict(zip(missing, pool.map(lambda u: _validator(ctx, u), missing), strict=True))
        found: dict[Any, Any] = {u: tag for u, tag in asked.items() if tag is not None}
        if found:
            pipe = ctx.redis.pipeline()
            pipe.hset(memo, mapping=found)
            pipe.expire(memo, keys.JOB_KEY_TTL_S)
            pipe.execute()
        out.update(asked)
    return out


def _key(ctx: Context, view: JobView, index: int) -> str | None:
    req = view.request
    clip = req.lines[index].clip
    try:
        playlist = ctx.resolver.source_for(
            view.job_id, clip.video_id, clip.hls_url, req.output.rendition_height
        )
        segments = select_segments(playlist, clip.start_ms, clip.end_ms)
    except SourceError:
        return None  # the cut meets the same error and decides
    urls = sorted({u for s in segments for u in (s.uri, *([s.init.uri] if s.init else []))})
    identity = source_identity(playlist, segments, _validators(ctx, view.job_id, urls).get)
    if identity is None:
        return None
    return cache_key(identity, clip.start_ms, clip.end_ms, ctx.profile(req))


def _cached_or_cut(ctx: Context, view: JobView, index: int) -> ClipRecord:
    s = ctx.settings
    if s.clip_cache_bytes <= 0:
        return cutting.cut_from_hls(ctx, view, index)
    key = _key(ctx, view, index)
    if key is None:
        ctx.observer.clip_cache("uncacheable")
        return cutting.cut_from_hls(ctx, view, index)
    cache = ClipCache(s.clip_cache_root, s.clip_cache_bytes)
    started = time.monotonic()
    scratch = _scratch(ctx, view, index)
    try:
        entry = cache.get(key, scratch / "cached.mp4")
        want, window = view.slots[index].frames, window_frames(view, index)
        how = derivation(int(entry.meta["frames"]), want, window) if entry is not None else None
        if entry is not None and how is not None:
            try:
                record = _derived(ctx, view, index, entry.clip, entry.meta, how, started)
            except (FFmpegMissing, Superseded):
                raise
            except Exception as exc:  # noqa: BLE001 - a bad entry is a miss: cut from the source
                log.warning("clip.cache_entry_failed", job_id=view.job_id, index=index, error=str(exc))
            else:
                ctx.observer.clip_cache("hit")
                record.cache = "hit"
                return record
        ctx.observer.clip_cache("miss")
        record = cutting.cut_from_hls(ctx, view, index)
        record.cache = "miss"
        _store(ctx, cache, key, view, record, scratch)
        return record
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _store(
    ctx: Context, cache: ClipCache, key: str, view: JobView, record: ClipRecord, scratch: Path
) -> None:
    """Best effort: a cache that cannot be written never fails the clip."""
    meta = {
        "frames": record.frames,
        "source_first_frame": record.source_first_frame,
        "source_last_frame": record.source_last_frame,
        "shown": record.shown,
        "video_id": record.video_id,
        "stored_at": time.time(),
    }
    try:
        local = clip_objects.fetch(ctx, view.job_id, [record.index], scratch / "store")[record.index]
        cache.put(key, local, meta)
    except Exception as exc:  # noqa: BLE001
        log.warning("clip.cache_store_failed", job_id=view.job_id, index=record.index, error=str(exc))
