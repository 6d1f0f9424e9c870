"""A job's segment cache: each HLS segment (or byte range, init section, key) is fetched at most once
per job and shared by its clips.

Files land in ``{work_dir}/{job_id}/segments/{video_id}/``: ``{seq}.seg`` (a
segment or its byte range, decrypted), ``init-{id}.mp4`` (an ``#EXT-X-MAP``),
``key-{id}`` (an AES-128 key: fetched once per job, never logged), and
``{seq}.head`` (the first bytes of a segment, read only for its first
timestamp). A Redis lock per file makes concurrent clips of one video (in any
process) wait for a single download instead of fetching the same bytes twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import fetch, keys, leases, netguard
from .errors import SourceInvalid
from .fetch import Limits
from .hls import Key, Part, Segment
from .observe import NULL_OBSERVER, Observer
from .settings import Settings

#: Segments of one clip fetched at once.
PARALLEL_SEGMENTS = 4
#: Bytes read from a segment that only lends its first timestamp (PAT, PMT and the first video PES,
#: or the moof); a whole multiple of the AES block.
HEAD_BYTES = 32 * 1024


@dataclass(frozen=True)
class Fetched:
    paths: list[Path]
    bytes_fetched: int  # bytes this call downloaded
    fetched: int  # files this call downloaded
    shared: int  # files already there (fetched by another clip of the job)


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decrypt(data: bytes, key: bytes, iv: bytes, *, final: bool = True) -> bytes:
    """AES-128-CBC; ``final``: strip the PKCS#7 padding (a whole segment), else a prefix as it is."""
    if len(key) != 16:
        raise SourceInvalid(f"AES-128 key is {len(key)} bytes, not 16")
    if len(data) % 16:
        raise SourceInvalid(f"encrypted segment is {len(data)} bytes, not whole AES blocks (truncated?)")
    d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    out = d.update(data) + d.finalize()
    if final and out:
        pad = out[-1]
        if not 1 <= pad <= 16 or out[-pad:] != bytes([pad]) * pad:
            raise SourceInvalid("AES-128 segment has bad padding (wrong key or IV, or damaged)")
        out = out[:-pad]
    return out


class SegmentCache:
    def __init__(self, settings: Settings, r: redis.Redis, observer: Observer = NULL_OBSERVER) -> None:
        self.settings = settings
        self.r = r
        self.observer = observer  # counts every byte downloaded, when it is, by whoever downloads it

    def root(self, job_id: str, video_id: str) -> Path:
        return self.settings.work_dir / job_id / "segments" / video_id

    # -- what clips ask for ----------------------------------------------------------
    def fetch(
        self, job_id: str, video_id: str, segments: list[Segment], *, prefetch: bool = False
    ) -> Fetched:
        """Every segment (decrypted) and, for fMP4, its init section; paths in the segments' order,
        each segment's init first where it changes.

        ``prefetch``: fetched ahead of the clip that needs it (``pipeline.prefetch``); its bytes are
        left in a ``.prefetched`` note and counted by the first clip that uses the file, and until
        then in the job's Redis count of unclaimed prefetch bytes (``unclaimed_prefetch_bytes``),
        which the assembly adds to the job's ``bytes_fetched``: the job's figure is what it took from
        the CDN, whether or not a clip used the bytes."""
        jobs: list[Callable[[], tuple[Path, int]]] = []
        init: Part | None = None
        for s in segments:
            if s.init is not None and s.init != init:
                jobs.append(partial(self._init, job_id, video_id, s.init, prefetch=prefetch))
            init = s.init
            jobs.append(partial(self.segment, job_id, video_id, s, prefetch=prefetch))
        return self._run(jobs)

    def segment(
        self, job_id: str, video_id: str, seg: Segment, *, prefetch: bool = False
    ) -> tuple[Path, int]:
        name = f"{seg.seq:06d}.seg"
        return self._file(job_id, video_id, name, seg.part, seg.key, seg.seq, prefetch=prefetch)

    def head(self, job_id: str, video_id: str, seg: Segment) -> tuple[Path, int]:
        """The segment if it is here already, else its first ``HEAD_BYTES`` (decrypted)."""
        whole = self.root(job_id, video_id) / f"{seg.seq:06d}.seg"
        if whole.exists():
            return whole, 0
        start = seg.offset or 0
        last = start + HEAD_BYTES - 1
        if seg.length is not None:
            last = min(last, start + seg.length - 1)
        part = Part(seg.uri, start, last - start + 1)
        # a segment shorter than HEAD_BYTES (its length unknown: not a byte range) comes whole
        return self._file(
            job_id, video_id, f"{seg.seq:06d}.head", part, seg.key, seg.seq, final=False, up_to=True
        )

    def init_path(self, job_id: str, video_id: str, part: Part) -> Path:
        return self.root(job_id, video_id) / f"init-{_short(repr(part))}.mp4"

    # -- internals ---------------------------------------------------------------------
    def _run(self, jobs: list[Callable[[], tuple[Path, int]]]) -> Fetched:
        # A clip's files download side by side: on a CDN with latency the clip waits for one
        # round trip instead of one per segment.
        if len(jobs) == 1:
            results = [jobs[0]()]
        else:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_SEGMENTS, len(jobs))) as pool:
                results = list(pool.map(lambda job: job(), jobs))
        paths = [p for p, _ in results]
        nbytes = sum(got for _, got in results)
        fetched = sum(1 for _, got in results if got)
        return Fetched(paths, nbytes, fetched, len(results) - fetched)

    def _init(self, job_id: str, video_id: str, part: Part, *, prefetch: bool = False) -> tuple[Path, int]:
        name = self.init_path(job_id, video_id, part).name
        return self._file(job_id, video_id, name, part, None, 0, prefetch=prefetch)

    @staticmethod
    def _note(dest: Path) -> Path:
        return dest.with_name(f".{dest.name}.prefetched")

    def unclaimed_prefetch_bytes(self, job_id: str) -> int:
        """Bytes prefetched for the job, on any host, that no clip has taken (yet): the slots whose
        clips never used them (gone to fallback, or cut on a host that did not see the files)."""
        return max(0, int(self.r.get(keys.job_prefetched(job_id)) or 0))

    def _claim(self, job_id: str, dest: Path) -> int:
        """The bytes a prefetch spent on ``dest``, once: whoever removes the note counts them."""
        note = self._note(dest)
        try:
            nbytes = int(note.read_text() or 0)
            note.unlink()
        except (FileNotFoundError, ValueError):
            return 0
        if nbytes:
            self.r.decrby(keys.job_prefetched(job_id), nbytes)
        return nbytes

    def _prefetched(self, job_id: str, dest: Path, nbytes: int) -> None:
        """After a prefetch wrote ``dest``: count its bytes as unclaimed while the job runs. When the job's
        assembly has fired, no clip reads its segments again: remove them all (a sibling download or a
        key file included). When its keys are gone (it ended and was forgotten, or Redis lost them while
        it runs, until a clip restores them), remove this file only. Then the folders left empty, the
        job's own included (a finished job's kept clips stay): nothing is left behind a finished job."""
        fired = self.r.exists(keys.job_assemble_fired(job_id))
        if not fired and self.r.exists(keys.job_planned(job_id)):
            if nbytes:
                with self.r.pipeline() as pipe:
                    pipe.incrby(keys.job_prefetched(job_id), nbytes)
                    pipe.expire(keys.job_prefetched(job_id), keys.JOB_KEY_TTL_S)
                    pipe.execute()
            return
        if fired:
            shutil.rmtree(dest.parent.parent, ignore_errors=True)
        else:
            self._note(dest).unlink(missing_ok=True)
            dest.unlink(missing_ok=True)
        for folder in (dest.parent, dest.parent.parent, self.settings.work_dir / job_id):
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:  # not empty
                break

    def _done(self, dest: Path, nbytes: int, prefetch: bool) -> tuple[Path, int]:
        if not prefetch:
            return dest, nbytes
        if nbytes:
            self._note(dest).write_text(str(nbytes))
        return dest, 0

    def _file(
        self,
        job_id: str,
        video_id: str,
        name: str,
        part: Part,
        key: Key | None,
        seq: int,
        *,
        final: bool = True,
        up_to: bool = False,
        prefetch: bool = False,
    ) -> tuple[Path, int]:
        dest = self.root(job_id, video_id) / name
        if dest.exists():
            return dest, 0 if prefetch else self._claim(job_id, dest)
        with self._locked(keys.segment_lock(job_id, video_id, name), prefetch) as mine:
            if not mine:  # a prefetch never waits: the clip or prefetch fetching it now will have it
                return dest, 0
            if dest.exists():
                return dest, 0 if prefetch else self._claim(job_id, dest)
            if key is None:
                new = dest.with_name(f".{dest.name}.{os.getpid()}.new")
                try:
                    got = self._download(part, new, video_id, up_to=up_to)
                    self._done(dest, got, prefetch)  # the note before the file: a clip never misses it
                    os.replace(new, dest)
                finally:
                    new.unlink(missing_ok=True)
                if prefetch:
                    self._prefetched(job_id, dest, got)
                return dest, 0 if prefetch else got
            secret, got = self._key(job_id, video_id, key)
            enc = dest.with_name(f".{dest.name}.{os.getpid()}.enc")
            try:
                got += self._download(part, enc, video_id, up_to=up_to)
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}.dec")
                tmp.write_bytes(decrypt(enc.read_bytes(), secret, key.iv_for(seq), final=final))
                self._done(dest, got, prefetch)
                os.replace(tmp, dest)
            finally:
                enc.unlink(missing_ok=True)
            if prefetch:
                self._prefetched(job_id, dest, got)
            return dest, 0 if prefetch else got

    @contextmanager
    def _locked(self, lock: str, prefetch: bool) -> Iterator[bool]:
        """The segment's lock: waited for by a clip (up to the lease wait); taken only if free by a
        prefetch, which yields False rather than wait behind a download already under way."""
        if prefetch:
            with leases.held_if_free(self.r, lock) as free:
                yield free
        else:
            with leases.held(self.r, lock, wait_s=self._wait_s()):
                yield True

    def _key(self, job_id: str, video_id: str, key: Key) -> tuple[bytes, int]:
        """The key's 16 bytes, fetched once per job (a file beside the segments); never logged."""
        dest = self.root(job_id, video_id) / f"key-{_short(key.uri)}"
        if dest.exists():
            return dest.read_bytes(), 0
        with leases.held(self.r, keys.segment_lock(job_id, video_id, dest.name), wait_s=self._wait_s()):
            if dest.exists():
                return dest.read_bytes(), 0
            got = self._download(Part(key.uri), dest, video_id, fetch.key_limits(self.settings))
            secret = dest.read_bytes()
            if len(secret) != 16:
                dest.unlink(missing_ok=True)
                raise SourceInvalid(
                    f"AES-128 key of {video_id} is {len(secret)} bytes, not 16",
                    video_id=video_id,
                    url=key.uri,
                )
            return secret, got

    def _download(
        self, part: Part, dest: Path, video_id: str, limits: Limits | None = None, *, up_to: bool = False
    ) -> int:
        got = fetch.download(
            part.uri,
            dest,
            policy=netguard.Policy.of(self.settings),
            limits=limits or fetch.segment_limits(self.settings),
            video_id=video_id,
            byte_range=part.byte_range,
            up_to=up_to,
        )
        self.observer.bytes_fetched(got)
        return got

    def _wait_s(self) -> float:
        # A download ends by its deadline: a clip waiting for another's download waits no longer.
        return self.settings.http_deadline_s + 5
