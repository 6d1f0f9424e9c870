"""The cross-job clip cache on real files: its key, LRU eviction under a size cap, concurrent fills."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from pipeline import clip_cache
from pipeline.clip_cache import ClipCache, cache_key, source_identity, strip_signature
from pipeline.ffmpeg_args import EncodeProfile
from pipeline.hls import MediaPlaylist, Segment

PROFILE = EncodeProfile(1280, 720, 30, "veryfast", 20)


def playlist(query: str = "") -> MediaPlaylist:
    base = "https://cdn.example/v1"
    segs = tuple(
        Segment(seq=i, uri=f"{base}/seg{i}.ts{query}", start_s=4.0 * i, duration_s=4.0) for i in range(3)
    )
    return MediaPlaylist(f"{base}/index.m3u8{query}", segs, True)


def key_for(pl: MediaPlaylist, etag: str = '"abc"', profile: EncodeProfile = PROFILE) -> str:
    identity = source_identity(pl, list(pl.segments[:2]), lambda url: f"etag:{etag}")
    assert identity is not None
    return cache_key(identity, 1000, 5000, profile)


def test_a_changed_query_signature_hits_but_a_changed_source_profile_or_rule_misses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed = "?Expires=1700000000&Signature=abc&Key-Pair-Id=K1&v=2"
    resigned = "?Expires=1800000000&Signature=xyz&Key-Pair-Id=K1&v=2"
    first = key_for(playlist(signed))
    assert key_for(playlist(resigned)) == first  # a new signature on the same bytes: the same entry
    assert key_for(playlist("?v=3")) != key_for(playlist("?v=2"))  # other parameters are identity
    assert key_for(playlist(signed), etag='"def"') != first  # the segment changed
    assert key_for(playlist(signed), profile=EncodeProfile(640, 360, 30)) != first
    assert key_for(playlist(signed), profile=EncodeProfile(1280, 720, 30, "veryfast", 23)) != first
    area = EncodeProfile(1280, 720, 30, "veryfast", 20, scaler="area")
    assert key_for(playlist(signed), profile=area) != first
    identity = source_identity(playlist(signed), list(playlist(signed).segments[:2]), lambda u: "etag:x")
    assert identity is not None
    assert cache_key(identity, 1000, 5001, PROFILE) != cache_key(identity, 1000, 5000, PROFILE)
    before = cache_key(identity, 1000, 5000, PROFILE)
    monkeypatch.setattr(clip_cache, "CUT_RULE_VERSION", clip_cache.CUT_RULE_VERSION + 1)
    assert cache_key(identity, 1000, 5000, PROFILE) != before


def test_a_source_without_etag_or_length_is_not_cacheable() -> None:
    pl = playlist()
    assert source_identity(pl, list(pl.segments), lambda url: None) is None


def test_strip_signature_drops_signing_parameters_of_common_cdns_only() -> None:
    url = "https://CDN.example/a/seg.ts?X-Amz-Signature=s&X-Amz-Date=d&token=t&hdnts=h&sig=q&se=1&quality=hd"
    assert strip_signature(url) == "https://cdn.example/a/seg.ts?quality=hd"


def clip_file(path: Path, size: int, fill: bytes = b"x") -> Path:
    path.write_bytes(fill * size)
    return path


def entries(root: Path) -> set[str]:
    return {
        p.name
        for shard in root.iterdir()
        if shard.is_dir() and not shard.name.startswith(".")
        for p in shard.iterdir()
    }


def test_eviction_keeps_the_cache_under_its_cap_least_recently_used_first(tmp_path: Path) -> None:
    # Given a 10 kB cache holding four 2 kB entries, the first of which was just used
    cache = ClipCache(tmp_path / "cache", 10_000)
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(6)]
    for i, key in enumerate(keys[:4]):
        assert cache.put(key, clip_file(tmp_path / f"{i}.mp4", 2000), {"frames": 10})
        os.utime(cache._dir(key) / "meta.json", (1000 + i, 1000 + i))  # used in order 0, 1, 2, 3
    assert cache.get(keys[0], tmp_path / "hit.mp4") is not None  # 0 is now the most recently used
    # When two more entries push it over the cap
    for i, key in enumerate(keys[4:], start=4):
        assert cache.put(key, clip_file(tmp_path / f"{i}.mp4", 2000), {"frames": 10})
    # Then the least recently used go first, and the accounting matches the files
    left = entries(cache.root)
    assert keys[1] not in left and keys[0] in left and keys[5] in left
    on_disk = sum(
        p.stat().st_size
        for p in cache.root.rglob("*")
        if p.is_file() and p.parent.parent.parent == cache.root
    )
    assert cache.usage_bytes() == on_disk <= 10_000
    # An entry larger than the cap is never stored
    assert not cache.put("f" * 64, clip_file(tmp_path / "big.mp4", 20_000), {"frames": 10})


def test_a_shorter_clip_never_replaces_a_longer_entry(tmp_path: Path) -> None:
    cache = ClipCache(tmp_path / "cache", 1_000_000)
    key = "a" * 64
    assert cache.put(key, clip_file(tmp_path / "long.mp4", 300, b"L"), {"frames": 60})
    assert not cache.put(key, clip_file(tmp_path / "short.mp4", 200, b"S"), {"frames": 45})
    assert cache.put(key, clip_file(tmp_path / "longer.mp4", 400, b"M"), {"frames": 90})
    hit = cache.get(key, tmp_path / "out.mp4")
    assert hit is not None and hit.meta["frames"] == 90 and hit.clip.read_bytes() == b"M" * 400
    assert cache.usage_bytes() == 400 + len(json.dumps({"frames": 90, "clip_bytes": 400}))


def _filler(
    root: str, key: str, writer: int, rounds: int, start: multiprocessing.synchronize.Barrier
) -> None:
    cache = ClipCache(Path(root), 10_000_000)
    src = Path(root).parent / f"src-{writer}.mp4"
    body = bytes([65 + writer]) * (50_000 + writer * 1000)
    src.write_bytes(body)
    start.wait()
    for r in range(rounds):
        cache.put(key, src, {"frames": 10 + r, "writer": writer, "sha": hashlib.sha256(body).hexdigest()})


def _reader(
    root: str, key: str, rounds: int, start: multiprocessing.synchronize.Barrier, bad: multiprocessing.Value
) -> None:  # type: ignore[valid-type]
    cache = ClipCache(Path(root), 10_000_000)
    dest = Path(root).parent / "read.mp4"
    start.wait()
    for _ in range(rounds):
        hit = cache.get(key, dest)
        if hit is not None and hashlib.sha256(hit.clip.read_bytes()).hexdigest() != hit.meta["sha"]:
            bad.value += 1  # a clip that is not the one its metadata describes, or half written


def test_processes_filling_the_same_key_at_once_leave_one_whole_entry_and_exact_accounting(
    tmp_path: Path,
) -> None:
    # Given three processes storing different clips under one key, and one reading it, all at once
    root, key, rounds = tmp_path / "cache", "b" * 64, 40
    mp = multiprocessing.get_context("fork")
    start = mp.Barrier(4)
    bad = mp.Value("i", 0)
    procs = [mp.Process(target=_filler, args=(str(root), key, w, rounds, start)) for w in range(3)]
    procs.append(mp.Process(target=_reader, args=(str(root), key, rounds * 3, start, bad)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # Then every read saw a whole entry whose clip matches its metadata
    assert bad.value == 0
    cache = ClipCache(root, 10_000_000)
    hit = cache.get(key, tmp_path / "final.mp4")
    assert hit is not None and hit.meta["frames"] == 10 + rounds - 1
    assert hashlib.sha256(hit.clip.read_bytes()).hexdigest() == hit.meta["sha"]
    # And one entry, no temporary left behind, the accounting equal to what is on disk
    assert entries(root) == {key}
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    entry = cache._dir(key)
    assert cache.usage_bytes() == sum(p.stat().st_size for p in entry.iterdir())
