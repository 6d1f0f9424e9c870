"""Outside audit G (each test failed on the code before its fix).

the clip cache's accounting after a worker is killed inside ``ClipCache.put``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.clip_cache import ClipCache


def on_disk(root: Path) -> int:
    return sum(
        p.stat().st_size
        for shard in root.iterdir()
        if shard.is_dir() and not shard.name.startswith(".")
        for entry in shard.iterdir()
        for p in entry.iterdir()
        if p.is_file()
    )


def test_a_worker_killed_inside_put_leaves_the_cache_within_its_cap(tmp_path: Path) -> None:
    """ClipCache.put renames the entry into place, then writes ``.usage`` (both under flock). A worker
    killed between the two (SIGKILL, OOM: the flock is released by the kernel) leaves an entry on
    disk that ``.usage`` does not count, and nothing recounts it until an eviction happens to run:
    eviction is triggered from the stale ``.usage`` alone, so the cache then holds more than
    CLIPLINE_CLIP_CACHE_BYTES ('at most this many bytes', README) by every such entry. Right: the
    accounting survives a kill (e.g. count entries by a journal/scan under the lock when a
    rename was not followed by its usage update, or trigger eviction on a scan), the cap holds."""
    root, cap = tmp_path / "cache", 10_000
    cache = ClipCache(root, cap)
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(8)]

    def clip(i: int) -> Path:
        p = tmp_path / f"{i}.mp4"
        p.write_bytes(bytes([65 + i]) * 2000)
        return p

    assert cache.put(keys[0], clip(0), {"frames": 10})  # .usage now exists
    # Given a worker killed right after renaming entry 1 into place (before .usage is written)
    pid = os.fork()
    if pid == 0:  # the child: die where a SIGKILL could land
        real = os.rename

        def rename_then_die(src: object, dst: object) -> None:
            real(src, dst)  # type: ignore[arg-type]
            os._exit(9)

        os.rename = rename_then_die  # type: ignore[assignment]
        try:
            ClipCache(root, cap).put(keys[1], clip(1), {"frames": 10})
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 9
    # When the surviving workers keep storing entries (one at a time, each under the cap)
    over = []
    for i in range(2, 6):
        cache.put(keys[i], clip(i), {"frames": 10})
        if on_disk(root) > cap:
            over.append((i, on_disk(root), cache.usage_bytes()))
    # Then the cache never holds more than its cap, and the accounting matches the files
    assert not over, f"(after put #, bytes on disk, .usage) over the {cap} B cap: {over}"
    assert cache.usage_bytes() == on_disk(root)
