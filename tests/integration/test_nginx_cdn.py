"""clipline against nginx as the CDN: a web server made by others, with a real CDN's settings.

Every other test fetches from clipline's own loopback CDN (``clipline.dev.cdn``). Here Debian's nginx
(``tests/integration/nginx.py``) serves the sample set and corpus variants: playlists gzip-coded and
chunked with a weak ETag, segments with a strong one, Range answered 206 (or 416), redirects 301, 302
and 307 (to a second server), a loop, redirects off the allowed hosts, 403 and 503 locations. Its
access log (``$bytes_sent``, ``$body_bytes_sent``, the Range header) is what the checks count on.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from clipline.dev.samples import SampleSet, count_frames, read_frames
from pipeline import clip_reuse, cutting, fetch, netguard, prefetch
from pipeline.context import Context
from pipeline.errors import SourceInvalid
from pipeline.settings import load_settings
from tests.media import corpus

from .conftest import Stack, new_job_id
from .faultkit import init_db, submit, wait_final
from .nginx import Nginx, require
from .test_clip_reuse import context  # settings for a loopback source (nginx is on 127.0.0.1)
from .test_hls_variants import expected, view_for

pytestmark = pytest.mark.integration

TS = corpus.VARIANTS["ts"][1]  # 1-second MPEG-TS segments, one file each
BYTES = corpus.VARIANTS["single_file"][1]  # one MPEG-TS file, segments as #EXT-X-BYTERANGE


@pytest.fixture(scope="module")
def nginx(samples: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx serving a copy of the sample set (so tests may change or remove files) and two corpus
    variants built here by the corpus's own recipes (ffmpeg's hls muxer): ``hls/ts``, ``hls/bytes``."""
    require()
    base = tmp_path_factory.mktemp("nginx")
    root = base / "root"
    shutil.copytree(samples.root, root)
    for name, folder in (("ts", "ts"), ("single_file", "bytes")):
        (root / "hls" / folder).mkdir(parents=True)
        corpus.VARIANTS[name][0](root / "hls" / folder)
    with Nginx(root, base / "server") as server:
        yield server


def copy_video(nginx: Nginx, folder: str) -> str:
    """A private copy of ``hls/{folder}`` (a test changes its files); returns its folder name."""
    name = f"{folder}_{secrets.token_hex(3)}"
    shutil.copytree(nginx.root / "hls" / folder, nginx.root / "hls" / name)
    return name


@pytest.fixture
def ctx(tmp_path: Path, redis_url: str) -> Iterator[Context]:
    yield context(tmp_path, redis_url)
    deadline = time.monotonic() + 30  # a test's background prefetches end with it
    while prefetch.pending() and time.monotonic() < deadline:
        time.sleep(0.02)


def request(job_id: str, lines: list[tuple[str, str, int, int]], audio_url: str | None) -> dict[str, Any]:
    """lines: (video_id, hls_url, source start ms, source end ms), 1 s each, 320x180 at 30 fps."""
    req: dict[str, Any] = {
        "job_id": job_id,
        "mix_request_id": f"req-{job_id}",
        "output": {"width": 320, "height": 180, "fps": 30},
        "lines": [
            {
                "text": f"line {i + 1}",
                "start_ms": 1000 * i,
                "end_ms": 1000 * (i + 1),
                "clip": {"video_id": vid, "start_ms": start, "end_ms": end, "hls_url": url},
            }
            for i, (vid, url, start, end) in enumerate(lines)
        ],
    }
    if audio_url:
        req["audio"] = {"url": audio_url}
    return req


def final_dir(url: str) -> str:
    """The folder of the playlist at ``url`` once its redirect (``/r30x/``) is followed."""
    path = urlsplit(url).path
    if re.match(r"/r30[127]/", path):
        path = path[5:]
    return path.rsplit("/", 1)[0]


def report(result: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(result["report_path"]).read_text())
    return data


# -- a whole job through nginx ---------------------------------------------------------------------


def test_a_job_through_nginx_is_frame_exact_and_counts_the_bytes_nginx_sent(
    stack: Stack, nginx: Nginx
) -> None:
    # Given a job whose every source is on nginx, some behind a redirect (301, 307 to the edge server,
    # 302 for the song), and a song on nginx
    lines = [
        ("v_a", nginx.hls_url("v_a"), 100, 1100),
        ("v_b", nginx.hls_url("v_b", "r301"), 2500, 3500),
        ("v_a", nginx.hls_url("v_a"), 7300, 8300),
        ("v_e", nginx.hls_url("v_a", "r307"), 12000, 13000),
        ("v_c", nginx.hls_url("v_b", "cached"), 6100, 7100),
        ("v_b", nginx.hls_url("v_b", "r301"), 9000, 10000),
    ]
    init_db(stack)
    nginx.reset_log()
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("nginx")
    submit(stack, request(job_id, lines, nginx.url("audio/song.m4a", "r302")))
    result = wait_final(stack, job_id, timeout=120)

    # Then it completes with every line's own frames
    assert result["status"] == "COMPLETED", result
    assert [s["outcome"] for s in report(result)["slots"]] == ["ok"] * len(lines)
    output = Path(result["output_path"])
    assert count_frames(output) == 30 * len(lines)
    assert read_frames(output) == [start * 30 // 1000 + i for _, _, start, _ in lines for i in range(30)]

    log = nginx.log()
    # every redirect was answered as configured and followed
    assert {(r["uri"], r["status"]) for r in log if r["status"] in (301, 302, 307)} == {
        ("/r301/hls/v_b/index.m3u8", 301),
        ("/r307/hls/v_a/index.m3u8", 307),
        ("/r302/audio/song.m4a", 302),
    }
    assert any(r["port"] == nginx.edge and r["uri"].startswith("/hls/v_a/seg_") for r in log)
    # playlists came gzip-coded, segments as they are
    assert {r["encoding"] for r in log if r["uri"].endswith(".m3u8") and r["status"] == 200} == {"gzip"}
    assert {r["encoding"] for r in log if r["uri"].endswith(".ts")} == {""}

    # Only the segments the windows need were fetched whole (2-second segments), each once per source
    # URL; segment 0 of a source is read for its first timestamp only (a Range, answered 206)
    whole = Counter((r["port"], r["uri"]) for r in log if r["uri"].endswith(".ts") and not r["range"])
    assert max(whole.values()) == 1, whole
    need = {
        (nginx.edge if "/r307/" in url else nginx.port, f"{final_dir(url)}/seg_{n:05d}.ts")
        for _, url, start, end in lines
        for n in range(start // 2000, (end - 1) // 2000 + 1)
    }
    assert set(whole) <= need, set(whole) - need
    ranged = [r for r in log if r["uri"].endswith(".ts") and r["range"]]
    assert all(r["status"] == 206 and r["uri"].endswith("seg_00000.ts") for r in ranged), ranged
    assert not any(r["uri"].endswith(".ts") and r["status"] not in (200, 206) for r in log)

    # bytes_fetched is what nginx sent: segments' bodies as sent, playlists as decoded, and the song
    def decoded(r: dict[str, Any]) -> int:
        if r["uri"].endswith(".m3u8"):
            return (nginx.root / r["uri"].removeprefix("/cached/").lstrip("/")).stat().st_size
        return int(r["body_bytes_sent"])

    got = [r for r in log if r["method"] == "GET" and r["status"] in (200, 206)]
    song = sum(decoded(r) for r in got if r["uri"].startswith("/audio/"))
    video = sum(decoded(r) for r in got if not r["uri"].startswith("/audio/"))
    assert song == (nginx.root / "audio" / "song.m4a").stat().st_size  # fetched once, whole
    assert sum(r["body_bytes_sent"] for r in log) < song + video  # the playlists came compressed
    # (the song is downloaded by the plan stage's background preparer, not the assembler that counts)
    assert result["clip_stats"]["bytes_fetched"] == video + song, (result["clip_stats"], video, song)


# -- byte ranges ------------------------------------------------------------------------------------


def test_a_byte_range_playlist_is_read_in_206_ranges_only_those_needed(
    tmp_path: Path, redis_url: str, nginx: Nginx
) -> None:
    # (no prefetch: this job is not planned, so what a prefetch fetched would be dropped and fetched again)
    ctx = context(tmp_path, redis_url, CLIPLINE_PREFETCH_SLOTS="0")
    playlist = (nginx.root / "hls" / "bytes" / "index.m3u8").read_text()
    ranges = [(int(o), int(o) + int(n) - 1) for n, o in re.findall(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", playlist)]
    assert len(ranges) == 6  # 1-second segments of one 6-second file
    view = view_for(nginx.url("hls/bytes/index.m3u8"), [(1234, 2900, 1500), (2990, 4010, 1100)])
    nginx.reset_log()
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        record = cutting.cut_from_hls(ctx, view, slot.index)
        assert record.path is not None and record.outcome == "ok", record
        assert read_frames(Path(record.path)) == expected(
            BYTES, line.clip.start_ms, line.clip.end_ms, slot.frames
        )
    media = [r for r in nginx.log() if r["uri"] == "/hls/bytes/index.ts"]
    # Every read of the file is a Range nginx answered 206 with exactly the bytes asked for
    assert media and all(r["status"] == 206 for r in media), media
    asked = []
    for r in media:
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", r["range"])
        assert m is not None, r
        first, last = int(m.group(1)), int(m.group(2))
        assert r["body_bytes_sent"] == last - first + 1, r
        asked.append((first, last))
    # Segment 0 (the source's first timestamp), then the windows' segments 1-4, each once; never 5
    assert sorted(asked) == ranges[:5]


def test_a_server_that_ignores_range_is_read_up_to_the_range_end(
    tmp_path: Path, redis_url: str, nginx: Nginx
) -> None:
    # nginx with max_ranges 0 answers a Range with 200 and the whole file (as some CDNs do)
    ctx = context(tmp_path, redis_url, CLIPLINE_PREFETCH_SLOTS="0")
    view = view_for(nginx.url("hls/bytes/index.m3u8", "noranges"), [(2990, 4010, 1100)])
    nginx.reset_log()
    record = cutting.cut_from_hls(ctx, view, 0)
    assert record.path is not None and record.outcome == "ok", record
    line, slot = view.request.lines[0], view.slots[0]
    assert read_frames(Path(record.path)) == expected(
        BYTES, line.clip.start_ms, line.clip.end_ms, slot.frames
    )
    media = [r for r in nginx.log() if r["uri"].endswith("/index.ts")]
    assert media and all(r["status"] == 200 and r["range"] for r in media), media


# -- gzip, ETags and the clip cache -----------------------------------------------------------------


def test_gzip_playlists_and_nginx_etags_key_the_clip_cache(
    tmp_path: Path, redis_url: str, nginx: Nginx
) -> None:
    ctx = context(tmp_path, redis_url, CLIPLINE_CLIP_CACHE_BYTES=str(50 * 2**20))
    name = copy_video(nginx, "ts")
    url = nginx.url(f"hls/{name}/index.m3u8")
    windows = [(0, 1000, 1000), (2500, 3600, 1100)]
    playlist = (nginx.root / "hls" / name / "index.m3u8").read_bytes()

    # A gzip-coded, chunked playlist is read as the file's very bytes
    nginx.reset_log()
    body = fetch.get(
        url, policy=netguard.Policy(frozenset(), True), limits=fetch.playlist_limits(ctx.settings)
    )
    assert body.content == playlist
    [got] = nginx.log()
    assert (
        got["encoding"] == "gzip" and got["etag"].startswith('W/"') and got["body_bytes_sent"] < len(playlist)
    )

    def render() -> list[Any]:
        view = view_for(url, windows)
        records = [clip_reuse.cut_once(ctx, view, i) for i in range(len(windows))]
        for slot, line, rec in zip(view.slots, view.request.lines, records, strict=True):
            assert read_frames(Path(rec.path or "")) == expected(
                TS, line.clip.start_ms, line.clip.end_ms, slot.frames
            )
        return records

    # The first render cuts and stores; its validators are the segments' strong ETags (HEAD)
    nginx.reset_log()
    assert [r.cache for r in render()] == ["miss", "miss"]
    heads = [r for r in nginx.log() if r["method"] == "HEAD"]
    assert heads and all(re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', r["etag"]) for r in heads), heads
    # A second render through nginx hits: nothing fetched but the playlist and the validators
    nginx.reset_log()
    assert [r.cache for r in render()] == ["hit", "hit"]
    assert not [r for r in nginx.log() if r["method"] == "GET" and r["uri"].endswith(".ts")]
    # When the origin replaces a segment of the second window (nginx's ETag is its mtime and size),
    # that window misses and is cut again from the new file; the other still hits
    seg = nginx.root / "hls" / name / "s003.ts"
    mtime = seg.stat().st_mtime
    os.utime(seg, (mtime + 100, mtime + 100))
    nginx.reset_log()
    assert [r.cache for r in render()] == ["hit", "miss"]
    assert {r["uri"] for r in nginx.log() if r["method"] == "GET" and r["uri"].endswith(".ts")} >= {
        f"/hls/{name}/s003.ts"
    }


def test_without_an_etag_a_segment_replaced_at_the_same_size_changes_the_source_identity(
    tmp_path: Path, redis_url: str, nginx: Nginx
) -> None:
    ctx = context(tmp_path, redis_url, CLIPLINE_CLIP_CACHE_BYTES=str(50 * 2**20))
    name = copy_video(nginx, "ts")

    def key(via: str) -> str | None:  # a new job each time: its validators are asked afresh (HEAD)
        return clip_reuse._key(
            ctx, view_for(nginx.url(f"hls/{name}/index.m3u8", via), [(2500, 3600, 1100)]), 0
        )

    before = {via: key(via) for via in ("", "noetag")}
    assert all(before.values()), before  # both cacheable (an ETag; a length)
    # When the origin replaces segment 3 with other bytes of the same size (segment 2's: 22372 bytes)
    folder = nginx.root / "hls" / name
    assert (folder / "s002.ts").stat().st_size == (folder / "s003.ts").stat().st_size
    mtime = (folder / "s003.ts").stat().st_mtime
    (folder / "s003.ts").write_bytes((folder / "s002.ts").read_bytes())
    os.utime(folder / "s003.ts", (mtime + 100, mtime + 100))
    after = {via: key(via) for via in ("", "noetag")}
    assert after[""] != before[""]  # nginx's ETag (mtime and size) tells
    assert after["noetag"] != before["noetag"]  # without one, Last-Modified tells (the length cannot)


# -- redirects --------------------------------------------------------------------------------------


def test_redirects_off_the_allowed_hosts_are_refused_per_hop_and_a_loop_ends(nginx: Nginx) -> None:
    settings = load_settings(
        {"CLIPLINE_ALLOWED_HOSTS": "127.0.0.1", "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true"}
    )
    policy, limits = netguard.Policy.of(settings), fetch.playlist_limits(settings)
    path = "hls/v_a/index.m3u8"
    nginx.reset_log()
    # A redirect to the edge server on an allowed host is followed
    assert (
        fetch.get(nginx.url(path, "r307"), policy=policy, limits=limits).content
        == (nginx.root / path).read_bytes()
    )
    # One to another host name (the same machine: localhost) or to the metadata address is refused at
    # that hop, before any connection to it
    for via, host in (("away", "'localhost'"), ("meta", "'169.254.169.254'")):
        with pytest.raises(SourceInvalid) as refused:
            fetch.get(nginx.url(path, via), policy=policy, limits=limits)
        msg = str(refused.value)
        assert (
            f"host {host} is not in CLIPLINE_ALLOWED_HOSTS" in msg
            and f"redirected from {nginx.url(path, via)}" in msg
        )
        assert not refused.value.transient
    assert [r["uri"] for r in nginx.log() if r["port"] == nginx.edge] == [f"/{path}"]  # the 307's only
    # A redirect loop ends after the hop limit with an error that says so
    nginx.reset_log()
    started = time.monotonic()
    with pytest.raises(SourceInvalid, match=rf"more than {netguard.MAX_REDIRECTS} redirects"):
        fetch.get(nginx.url(path, "loop"), policy=policy, limits=limits)
    assert time.monotonic() - started < 5
    assert [r["status"] for r in nginx.log()] == [302] * (netguard.MAX_REDIRECTS + 1)


# -- nginx's errors end the job, retried only when they are transient -------------------------------


def test_nginx_errors_end_the_job_in_bounded_time_transient_retried_permanent_not(
    stack: Stack, nginx: Nginx
) -> None:
    # Given sources that nginx answers 503, 403, 404 (a segment removed), 416 (a byte-range file cut
    # short), a redirect loop, and one redirect off the allowed hosts; and one healthy source
    removed = copy_video(nginx, "v_b")
    (nginx.root / "hls" / removed / "seg_00002.ts").unlink()
    short = copy_video(nginx, "bytes")
    media = nginx.root / "hls" / short / "index.ts"
    os.truncate(media, media.stat().st_size // 2)
    lines = [
        ("v_a", nginx.hls_url("v_a"), 100, 1100),
        ("n503", nginx.hls_url("v_a", "gone503"), 100, 1100),
        ("n403", nginx.hls_url("v_a", "forbidden"), 100, 1100),
        ("n404", nginx.hls_url(removed), 4200, 5200),
        ("n416", nginx.url(f"hls/{short}/index.m3u8"), 4500, 5500),
        ("nloop", nginx.hls_url("v_a", "loop"), 100, 1100),
        ("naway", nginx.hls_url("v_a", "away"), 100, 1100),
    ]
    # (no prefetch: each request in nginx's log is then a clip's own attempt)
    stack.env.update(
        {
            "CLIPLINE_CLIP_MAX_RETRIES": "2",
            "CLIPLINE_ALLOWED_HOSTS": "127.0.0.1",
            "CLIPLINE_PREFETCH_SLOTS": "0",
        }
    )
    init_db(stack)
    nginx.reset_log()
    stack.start_workers("--stage", "all", "--concurrency", "2")
    job_id = new_job_id("nginxerr")
    started = time.monotonic()
    submit(stack, request(job_id, lines, None))
    result = wait_final(stack, job_id, timeout=120)
    assert time.monotonic() - started < 60

    # Then the job ends with gaps: the healthy line ok, every other a placeholder saying why
    assert result["status"] == "COMPLETED_WITH_GAPS", result
    slots = {s["video_id"]: s for s in report(result)["slots"]}
    assert slots["v_a"]["outcome"] == "ok"
    why = {
        "n503": "answered HTTP 503",
        "n403": "answered HTTP 403",
        "n404": "answered HTTP 404",
        "n416": "answered HTTP 416",
        "nloop": f"more than {netguard.MAX_REDIRECTS} redirects",
        "naway": "host 'localhost' is not in CLIPLINE_ALLOWED_HOSTS",
    }
    for vid, text in why.items():
        assert slots[vid]["outcome"] == "placeholder", slots[vid]
        assert text in (slots[vid]["reason"] or ""), slots[vid]
    # the 503 was retried (1 + CLIPLINE_CLIP_MAX_RETRIES attempts), the permanent answers were not
    assert slots["n503"]["attempts"] == 3 and "retries exhausted" in slots["n503"]["reason"]
    assert all(slots[vid]["attempts"] == 1 for vid in why if vid != "n503"), slots
    log = nginx.log()
    assert len([r for r in log if r["uri"].startswith("/gone503/")]) >= 3
    assert len([r for r in log if r["uri"].startswith("/forbidden/")]) == 1
    assert len([r for r in log if r["uri"] == f"/hls/{removed}/seg_00002.ts"]) == 1
    # the 416s: the window's two segments (both past the cut), each asked once
    answered_416 = [r["range"] for r in log if r["status"] == 416]
    assert len(answered_416) == 2 and len(set(answered_416)) == 2, answered_416
    assert not [r for r in log if r["port"] == nginx.edge]  # the refused hop was never made
