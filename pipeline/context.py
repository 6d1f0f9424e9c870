"""What a worker process needs to run any stage, built once per process (never at import)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

import redis

from .completion import Completion
from .ffmpeg_args import EncodeProfile, encoder_threads
from .limits import ClusterLimit
from .liveconfig import LiveConfig
from .models import RenderRequest
from .observe import NULL_OBSERVER, Observer
from .segments import SegmentCache
from .settings import Settings
from .sources import SourceResolver
from .storage import Storage, open_storage
from .store import JobStore
from .timeline import Slot, build_slots

_REQUEST_CACHE_SIZE = 64


@dataclass(frozen=True)
class JobView:
    """A job's immutable plan: the request and its slots; for a clip's work, the attempt it is for
    (``pipeline.fencing``: None, as ``Context.view`` gives it, is not fenced)."""

    request: RenderRequest
    slots: list[Slot]
    attempt: int | None = None

    @property
    def job_id(self) -> str:
        return self.request.job_id


@dataclass
class Context:
    settings: Settings
    observer: Observer = NULL_OBSERVER
    _views: OrderedDict[str, JobView] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, health_check_interval=30)

    @cached_property
    def store(self) -> JobStore:
        return JobStore(self.settings.database_url)

    @cached_property
    def completion(self) -> Completion:
        return Completion(self.redis)

    @cached_property
    def resolver(self) -> SourceResolver:
        return SourceResolver(self.settings, self.redis, self.observer)

    @cached_property
    def segments(self) -> SegmentCache:
        return SegmentCache(self.settings, self.redis, self.observer)

    @cached_property
    def storage(self) -> Storage:
        """Where clips and results live (CLIPLINE_STORAGE_URL); one client per process."""
        return open_storage(self.settings)

    @cached_property
    def live(self) -> LiveConfig:
        return LiveConfig(self.settings, self.redis, on_change=self.observer.config_changed)

    @cached_property
    def limit(self) -> ClusterLimit:
        """Numbered, leased clip slots, capped cluster-wide when ``render_clip_concurrency`` is set live."""
        return ClusterLimit(self.redis, self.live.cluster_cap)

    @cached_property
    def ffmpeg(self) -> str:
        return self.settings.ffmpeg_path()

    @cached_property
    def ffprobe(self) -> str:
        return self.settings.ffprobe_path()

    def profile(self, request: RenderRequest) -> EncodeProfile:
        threads = encoder_threads(os.cpu_count() or 1, self.settings.render_clip_concurrency)
        return EncodeProfile.for_output(
            request.output, self.settings.x264_preset, self.settings.x264_crf, threads=threads
        )

    def view(self, job_id: str) -> JobView:
        """The job's request and slots; cached, since a job's request never changes."""
        with self._lock:
            hit = self._views.get(job_id)
            if hit is not None:
                self._views.move_to_end(job_id)
                return hit
        request = self.store.get(job_id).render_request()
        v = JobView(request, build_slots(request))
        with self._lock:
            self._views[job_id] = v
            while len(self._views) > _REQUEST_CACHE_SIZE:
                self._views.popitem(last=False)
        return v
