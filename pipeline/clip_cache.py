"""The cross-job clip cache: a finished HLS cut kept on this host, found again by what it was cut from.

Off unless ``CLIPLINE_CLIP_CACHE_BYTES`` > 0. The key (``cache_key``) is a hash of

- the source's identity (``source_identity``): the media playlist with every URL stripped of its
  signature parameters (``strip_signature``), and each needed segment's URL, byte range and
  validator (its ETag, else its length and Last-Modified, from a HEAD request, once per job:
  ``clip_reuse``); a source without either is not cached;
- the source window (start and end ms) and the output profile (size, fps, x264 preset and crf, the
  scaler when one is named);
- ``CUT_RULE_VERSION``: bump it whenever a change to cutting could change a clip's frames.

The slot's frame count is *not* in the key: an entry keeps its clip's frame count and the first
and last source frames, and a slot of another length is made from it by the twin rule
(``clip_reuse.derivation``: the first frames, or the last frame held once the window has ended).

On disk, ``{root}/{key[:2]}/{key}/`` holds ``clip.mp4`` and ``meta.json``. An entry is written in a
temporary directory and renamed into place, so a reader never sees half of one; readers open the
entry's directory first and read both files through it, so a concurrent replacement or eviction
gives them one whole entry or none. ``.usage`` holds the bytes in use; it, every rename into place
and every eviction change under ``flock`` on ``.lock``, so concurrent workers of one host account
correctly. Eviction is least recently used (a hit touches the entry) down to 90 % of the cap. The
cache is per host: do not share its directory between hosts (``flock`` over NFS is not to be
trusted).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .ffmpeg_args import EncodeProfile
from .hls import MediaPlaylist, Segment

#: Bump when a change to cutting (frame rule, filters, encoder arguments) could change a clip.
#: 2: x264 threads sized for the clips encoding at once (same frames, other bytes). 3: a frame left in
#: the next segment, segments starting mid-GOP, shared timestamps and carried parameter sets (other
#: frames on such sources: their entries cut before must not be reused). 4: a picture size change
#: inside a run no longer rebuilds the filter graph (it shifted the frames after it by two). 5: frames
#: timed by a coarse clock (milliseconds) are picked on their frame-rate grid (one in three was held).
#: 6: MPEG-TS inputs are moved by ``ffmpeg_args.TS_INPUT_OFFSET_S`` (one that starts at exactly 0 had
#: its video moved by ffmpeg's start-time correction: other frames). 7: an H.264 recovery point (TS, fMP4)
#: that recovers only frames later (periodic intra refresh) starts only windows from there (ffmpeg
#: dropped the frames before it and held a later one: other frames). 8: a source whose pixels are not
#: square is fitted at the aspect it is shown at (it was squeezed into a pillarbox: another picture), and
#: interlaced frames are deinterlaced (they were scaled combed). 9: HDR (PQ, HLG) frames are tone-mapped
#: to SDR BT.709 (they were passed on as PQ or HLG code values, tagged so: other colours).
CUT_RULE_VERSION = 9
#: Eviction frees space down to this share of the cap, so it does not run on every store.
LOW_WATER = 0.9
#: A temporary entry older than this belonged to a writer that died: removed at the next eviction.
STALE_TMP_S = 3600.0

#: Query parameters that sign or time-limit a URL (CloudFront, S3/GCS presigning, Akamai, Azure SAS,
#: common token schemes): they change from one job to the next while the bytes stay the same.
SIGNATURE_PARAMS = frozenset(
    {
        "expires",
        "signature",
        "key-pair-id",
        "policy",
        "token",
        "hdnts",
        "hdnea",
        "__token__",
        "sig",
        "se",
        "st",
        "sp",
        "sv",
        "sr",
        "spr",
        "skoid",
        "sktid",
        "skt",
        "ske",
        "sks",
        "skv",
        "exp",
        "auth_key",
        "wmsauthsign",
        "acl",
    }
)
SIGNATURE_PREFIXES = ("x-amz-", "x-goog-")


def strip_signature(url: str) -> str:
    """``url`` without its signature parameters (names above, any case); other parameters kept."""
    parts = urlsplit(url)
    kept = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in SIGNATURE_PARAMS and not k.lower().startswith(SIGNATURE_PREFIXES)
    ]
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, urlencode(kept), ""))


def source_identity(
    playlist: MediaPlaylist, segments: list[Segment], validator: Callable[[str], str | None]
) -> str | None:
    """What the window is cut from, as a string; None when a segment has neither ETag nor length.

    ``validator(url)`` returns the resource's ETag, else its length and Last-Modified (``clip_reuse``
    does a HEAD request).
    """
    data = playlist.to_json()
    text = json.dumps(data, sort_keys=True)
    for url in _urls(data):
        text = text.replace(json.dumps(url), json.dumps(strip_signature(url)))
    needed: list[list[Any]] = []
    for seg in segments:
        # the segment, then its init section: in that order in every process (a set's order is not)
        for uri in dict.fromkeys([seg.uri, *([seg.init.uri] if seg.init else [])]):
            tag = validator(uri)
            if tag is None:
                return None
            needed.append([strip_signature(uri), seg.offset, seg.length, tag])
    return json.dumps({"playlist": hashlib.sha256(text.encode()).hexdigest(), "segments": needed})


def _urls(node: Any) -> Iterator[str]:
    if isinstance(node, str) and node.startswith(("http://", "https://")):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _urls(v)
    elif isinstance(node, list):
        for v in node:
            yield from _urls(v)


def cache_key(identity: str, start_ms: int, end_ms: int, profile: EncodeProfile) -> str:
    """The entry's name: sha256 of the source identity, window, profile and ``CUT_RULE_VERSION``."""
    fields = {
        "rule": CUT_RULE_VERSION,
        "source": identity,
        "window": [start_ms, end_ms],
        "profile": [profile.width, profile.height, profile.fps, profile.preset, profile.crf],
    }
    if profile.scaler:  # drafts: the scaler shapes the pixels too (absent, keys stay as they were)
        fields["scaler"] = profile.scaler
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    clip: Path  # a private hard link (or copy) of the cached clip, the caller's to move or remove
    meta: dict[str, Any]  # frames, source_first_frame, source_last_frame, ...


class ClipCache:
    def __init__(self, root: Path, cap_bytes: int) -> None:
        self.root = root
        self.cap_bytes = cap_bytes

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    # -- readers -----------------------------------------------------------------------
    def get(self, key: str, dest: Path) -> Entry | None:
        """The entry as a private file at ``dest`` and its metadata; None on a miss. Touches the entry."""
        try:
            fd = os.open(self._dir(key), os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            with open(os.open("meta.json", os.O_RDONLY, dir_fd=fd)) as fh:
                meta = _usable(json.load(fh), os.stat("clip.mp4", dir_fd=fd).st_size)
            if meta is None:  # damaged (a disk error, a hand edit, an older format): a miss, replaced
                return None
            dest.unlink(missing_ok=True)
            try:
                os.link("clip.mp4", dest, src_dir_fd=fd)
            except OSError:  # another filesystem: copy through the same directory handle
                with open(os.open("clip.mp4", os.O_RDONLY, dir_fd=fd), "rb") as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
            os.utime("meta.json", dir_fd=fd)  # last use, for LRU
        except (OSError, ValueError):
            dest.unlink(missing_ok=True)
            return None  # evicted or replaced while we read: a miss
        finally:
            os.close(fd)
        return Entry(dest, meta)

    def usage_bytes(self) -> int:
        with self._locked():
            return self._usage()

    # -- writers -----------------------------------------------------------------------
    def put(self, key: str, clip: Path, meta: dict[str, Any]) -> bool:
        """Store ``clip`` under ``key`` unless an entry with at least as many frames is there.

        Returns True when stored. The bytes are written outside the lock; the rename into place, the
        accounting and any eviction under it.
        """
        size = clip.stat().st_size
        if size > self.cap_bytes * LOW_WATER:
            return False
        meta = {**meta, "clip_bytes": size}  # what a reader checks the file against
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            try:
                os.link(clip, tmp / "clip.mp4")
            except OSError:
                shutil.copyfile(clip, tmp / "clip.mp4")
            (tmp / "meta.json").write_text(json.dumps(meta))
            size = _dir_size(tmp)
            with self._locked():
                usage, final = self._usage(), self._dir(key)
                if final.exists():
                    old = _read_meta(final)
                    if old is not None and int(old["frames"]) >= int(meta.get("frames", 0)):
                        return False
                    usage -= self._remove(final)
                usage += size
                if usage > self.cap_bytes:
                    usage = self._evict(reserve=size) + size
                # Counted before it is in place: a worker killed between the two leaves the count high
                # (put right by the next eviction's scan), never the cache over its cap.
                self._set_usage(usage)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, final)
                return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- internals (callers hold the lock) ------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _usage(self) -> int:
        try:
            return int((self.root / ".usage").read_text())
        except (OSError, ValueError):
            return self._scan_total()  # first use, or lost: count what is there

    def _set_usage(self, n: int) -> None:
        tmp = self.root / f".usage.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(str(max(0, n)))
        os.replace(tmp, self.root / ".usage")

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, directory) of every entry."""
        out = []
        for shard in self.root.iterdir():
            if not shard.is_dir() or shard.name.startswith("."):
                continue
            for entry in shard.iterdir():
                try:
                    out.append(((entry / "meta.json").stat().st_mtime, _dir_size(entry), entry))
                except OSError:
                    continue
        return out

    def _scan_total(self) -> int:
        return sum(size for _, size, _ in self._entries()) if self.root.is_dir() else 0

    def _evict(self, reserve: int = 0) -> int:
        """Remove least recently used entries down to the low-water mark, leaving room for ``reserve``
        more bytes; returns the bytes left."""
        now = time.time()
        for stale in self.root.glob(".tmp-*"):
            try:
                if now - stale.stat().st_mtime > STALE_TMP_S:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                continue
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, _, path in entries:
            if total + reserve <= self.cap_bytes * LOW_WATER:
                break
            total -= self._remove(path)
        return total

    def _remove(self, entry: Path) -> int:
        """Take an entry out of view at once (a rename), then delete it; returns its bytes."""
        size = _dir_size(entry)
        gone = self.root / f".tmp-gone-{uuid.uuid4().hex}"
        try:
            os.rename(entry, gone)
        except OSError:
            return 0
        shutil.rmtree(gone, ignore_errors=True)
        return size


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _read_meta(entry: Path) -> dict[str, Any] | None:
    """An entry's metadata when the entry is whole (``_usable``), else None."""
    try:
        return _usable(json.loads((entry / "meta.json").read_text()), (entry / "clip.mp4").stat().st_size)
    except (OSError, ValueError):
        return None


def _usable(meta: Any, clip_bytes: int) -> dict[str, Any] | None:
    """``meta`` when it describes a whole entry: an object with a frame count, whose clip has the bytes
    it was stored with (a clip cut short on disk, or an entry of an older format, is not)."""
    if not isinstance(meta, dict):
        return None
    frames, stored = meta.get("frames"), meta.get("clip_bytes")
    if type(frames) is not int or frames < 1 or type(stored) is not int or stored != clip_bytes:
        return None
    return meta
