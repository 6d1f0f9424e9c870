"""A job's segment cache: each HLS segment is fetched at most once per job and shared by its clips.

Segments land in ``{work_dir}/{job_id}/segments/{video_id}/{seq}.ts``. A Redis
lock per segment makes concurrent clips of one video (in any process) wait for
a single download instead of fetching the same bytes twice.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis

from . import fetch, keys, leases
from .hls import MediaPlaylist, Segment
from .settings import Settings

#: Segments of one clip fetched at once.
PARALLEL_SEGMENTS = 4


@dataclass(frozen=True)
class Fetched:
    paths: list[Path]
    bytes_fetched: int  # bytes this call downloaded
    fetched: int  # segments this call downloaded
    shared: int  # segments already there (fetched by another clip of the job)


class SegmentCache:
    def __init__(self, settings: Settings, r: redis.Redis) -> None:
        self.settings = settings
        self.r = r

    def root(self, job_id: str, video_id: str) -> Path:
        return self.settings.work_dir / job_id / "segments" / video_id

    def fetch(self, job_id: str, video_id: str, playlist: MediaPlaylist, segments: list[Segment]) -> Fetched:
        paths: list[Path] = []
        nbytes = fetched = shared = 0
        items: list[tuple[str, str, int]] = [(s.uri, f"{s.seq:06d}.ts", s.seq) for s in segments]
        if playlist.init_uri:
            items.insert(0, (playlist.init_uri, "init.mp4", -1))
            for i in range(1, len(items)):
                items[i] = (items[i][0], f"{items[i][2]:06d}.m4s", items[i][2])
        # A clip's segments download side by side: on a CDN with latency the clip waits for one
        # round trip instead of one per segment.
        if len(items) == 1:
            results = [self._one(job_id, video_id, *items[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_SEGMENTS, len(items))) as pool:
                results = list(pool.map(lambda item: self._one(job_id, video_id, *item), items))
        for path, got in results:
            paths.append(path)
            nbytes += got
            if got:
                fetched += 1
            else:
                shared += 1
        return Fetched(paths, nbytes, fetched, shared)

    def _one(self, job_id: str, video_id: str, uri: str, name: str, seq: int) -> tuple[Path, int]:
        dest = self.root(job_id, video_id) / name
        if dest.exists():
            return dest, 0
        wait_s = self.settings.http_timeout_s * 4 + 5
        with leases.held(self.r, keys.segment_lock(job_id, video_id, seq), wait_s=wait_s):
            if dest.exists():
                return dest, 0
            got = fetch.download(
                uri,
                dest,
                timeout_s=self.settings.http_timeout_s,
                video_id=video_id,
                allowed_hosts=self.settings.allowed_host_set,
            )
            return dest, got
