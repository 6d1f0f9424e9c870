"""Where a clip's source is: the request's hls_url, or the video API; then its media playlist.

Resolution happens once per video per job: the plan stage pre-resolves every
distinct video, and a Redis lock makes clips that still need one (after a
transient failure in planning) wait for a single resolution. The API answer
(video_id -> HLS URL) is cached across jobs for ``source_cache_ttl_s``.
A permanent answer (404, 403, malformed) is remembered for the job so its
other clips go straight to fallback. From a master playlist the rendition is
picked by height among those whose ``CODECS`` this ffmpeg can decode.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import structlog

from . import errors, fetch, ffmpeg_build, keys, leases, netguard
from .errors import SourceError, SourceInvalid, SourceNotFound, SourceUnavailable
from .hls import MasterPlaylist, MediaPlaylist, parse_playlist, undecodable_codecs
from .observe import Observer
from .settings import Settings

log = structlog.get_logger(__name__)

API_429_ATTEMPTS = 4


class SourceResolver:
    def __init__(self, settings: Settings, r: redis.Redis, observer: Observer) -> None:
        self.settings = settings
        self.r = r
        self.observer = observer

    # -- the video API -------------------------------------------------------
    def hls_url(self, video_id: str, hint: str | None) -> str:
        if hint:
            return hint
        cached = self.r.get(keys.video_hls(video_id))
        if cached:
            self.observer.source_resolution("hit")
            return keys.text(cached)
        try:
            url = self._ask_api(video_id)
        except SourceError:
            self.observer.source_resolution("error")
            raise
        self.observer.source_resolution("miss")
        if self.settings.source_cache_ttl_s:
            self.r.set(keys.video_hls(video_id), url, ex=self.settings.source_cache_ttl_s)
        return url

    def _ask_api(self, video_id: str) -> str:
        s = self.settings
        if not s.twelvelabs_index_id:
            raise SourceInvalid(
                f"video {video_id} has no hls_url and TWELVELABS_INDEX_ID is not set", video_id=video_id
            )
        url = f"{s.twelvelabs_api_url.rstrip('/')}/indexes/{s.twelvelabs_index_id}/videos/{video_id}"
        headers = {"x-api-key": s.twelvelabs_api_key or ""}
        for attempt in range(1, API_429_ATTEMPTS + 1):
            try:
                resp = fetch.get(
                    url,
                    policy=netguard.Policy(frozenset(), s.allow_private_networks),
                    limits=fetch.api_limits(s),
                    headers=headers,
                    video_id=video_id,
                )
                break
            except SourceUnavailable as exc:
                # A rate limit is honoured here, within a bound; other transient errors go to the caller.
                if exc.retry_after_s is None or attempt == API_429_ATTEMPTS:
                    raise
                wait = min(exc.retry_after_s, s.api_max_retry_after_s)
                log.warning("video_api.rate_limited", video_id=video_id, retry_after_s=wait, attempt=attempt)
                time.sleep(wait)
        try:
            video_url = resp.json()["hls"]["video_url"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # not JSON, or nested too deep
            raise SourceNotFound(f"video API has no hls.video_url for {video_id}", video_id=video_id) from exc
        if not isinstance(video_url, str) or not video_url:
            raise SourceNotFound(f"video API has no hls.video_url for {video_id}", video_id=video_id)
        return video_url

    # -- the job's view of a source -------------------------------------------
    def source_for(self, job_id: str, video_id: str, hint: str | None, height: int) -> MediaPlaylist:
        """The media playlist for ``video_id`` in this job, resolving it at most once."""
        hit = self._cached(job_id, video_id)
        if hit is not None:
            return hit
        s = self.settings
        wait_s = s.http_deadline_s * (API_429_ATTEMPTS + 2) + s.api_max_retry_after_s * API_429_ATTEMPTS
        # A leased lock: a resolver that dies (SIGKILL) holds up the job's clips for seconds, not wait_s.
        with leases.held(self.r, keys.job_source_lock(job_id, video_id), wait_s=wait_s):
            hit = self._cached(job_id, video_id)
            if hit is not None:
                return hit
            try:
                playlist, nbytes = self._load_playlist(video_id, hint, height)
            except SourceError as exc:
                if not exc.transient:
                    self._store(job_id, video_id, {"error": type(exc).__name__, "message": str(exc)})
                raise
            self._store(job_id, video_id, {"playlist": playlist.to_json(), "bytes": nbytes})
            return playlist

    def prewarm(self, job_id: str, videos: dict[str, str | None], height: int) -> dict[str, str]:
        """Resolve every distinct video of a job (a few at a time); video_id -> 'ok' or the error."""

        def one(item: tuple[str, str | None]) -> tuple[str, str]:
            vid, hint = item
            try:
                self.source_for(job_id, vid, hint, height)
                return vid, "ok"
            except SourceError as exc:
                return vid, f"{type(exc).__name__}: {exc}"

        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve") as pool:
            return dict(pool.map(one, videos.items()))

    def playlist_bytes(self, job_id: str, video_ids: list[str]) -> int:
        total = 0
        for vid in video_ids:
            raw = self.r.get(keys.job_source(job_id, vid))
            if raw:
                total += int(json.loads(raw).get("bytes", 0))
        return total

    def _cached(self, job_id: str, video_id: str) -> MediaPlaylist | None:
        raw = self.r.get(keys.job_source(job_id, video_id))
        if not raw:
            return None
        data: dict[str, Any] = json.loads(raw)
        if "playlist" in data:
            return MediaPlaylist.from_json(data["playlist"])
        cls = getattr(errors, str(data.get("error")), SourceInvalid)
        if not (isinstance(cls, type) and issubclass(cls, SourceError)):
            cls = SourceInvalid
        raise cls(str(data.get("message", "source unavailable")), video_id=video_id)

    def _store(self, job_id: str, video_id: str, data: dict[str, Any]) -> None:
        self.r.set(keys.job_source(job_id, video_id), json.dumps(data), ex=keys.JOB_KEY_TTL_S)

    def _load_playlist(self, video_id: str, hint: str | None, height: int) -> tuple[MediaPlaylist, int]:
        s = self.settings
        url = self.hls_url(video_id, hint)
        kw: dict[str, Any] = {
            "policy": netguard.Policy.of(s),
            "limits": fetch.playlist_limits(s),
            "video_id": video_id,
        }
        resp = fetch.get(url, **kw)
        nbytes = len(resp.content)
        parsed = parse_playlist(resp.text, str(resp.url))
        if isinstance(parsed, MasterPlaylist):
            decoders = ffmpeg_build.decoders(s.ffmpeg_path())
            variant = parsed.pick(height, lambda v: not undecodable_codecs(v.codecs, decoders))
            resp = fetch.get(variant.uri, **kw)
            nbytes += len(resp.content)
            parsed = parse_playlist(resp.text, str(resp.url), parsed)
            if isinstance(parsed, MasterPlaylist):
                raise SourceInvalid(
                    f"{variant.uri}: a master playlist inside a master playlist", video_id=video_id
                )
        self.observer.bytes_fetched(nbytes)
        return parsed, nbytes
