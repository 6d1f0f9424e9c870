"""Every HLS variant of the corpus, cut by clipline and traced frame by frame with no tolerance.

The corpus (``tests/media/corpus.py``) is made by ffmpeg's command line, by
GStreamer (hlssink2, hlssink, fragmented mp4mux), by Shaka Packager, by
Bento4 (mp42hls, mp4fragment) and by nginx-rtmp (an RTMP publish written as
HLS), not by clipline's sample code; each frame shows its absolute frame number. Clips are
cut through ``pipeline.cutting`` against a loopback CDN and real Redis, and
every output frame is read back and compared with the frame rule:
output frame i shows the source frame whose display interval contains
``start + min(i, i_last) / fps`` (``i_last``: the window's last output frame).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.samples import pattern_graph, read_frames
from pipeline import assembly, cutting, files, fmp4_times, keys, leases, prefetch
from pipeline.context import Context, JobView
from pipeline.errors import SourceInvalid
from pipeline.frame_rule import output_times
from pipeline.hls import MediaPlaylist, parse_playlist, select_segments
from pipeline.hls_inputs import HlsInputs, SourceGap
from pipeline.models import parse_request
from pipeline.observe import Observer
from pipeline.probe import video_packets
from pipeline.settings import Settings, load_settings
from pipeline.timeline import build_slots
from tests.media import corpus

from .conftest import CACHE

pytestmark = pytest.mark.integration

#: (source start ms, source end ms, slot ms): from the start, across segment boundaries, a window
#: shorter than its slot (held last frame), one running past the source's end.
WINDOWS = [(0, 1000, 1000), (1234, 2900, 1500), (2990, 4010, 1100), (2500, 3600, 1100), (5400, 7000, 1600)]


def expected(variant: corpus.Variant, start_ms: int, end_ms: int, frames: int, fps: int = 30) -> list[int]:
    window_ms = min(end_ms - start_ms, math.ceil(frames * 1000 / fps))
    i_last = min(frames - 1, math.ceil(window_ms * fps / 1000) - 1)
    out = []
    for i in range(frames):
        t = Fraction(start_ms, 1000) + Fraction(min(i, i_last), fps)
        shown = min(variant.frames - 1, math.floor(t * variant.rate))
        while variant.kept_of_18 and shown % 18 not in variant.kept_of_18:  # a variable rate: the frame
            shown -= 1  # shown at t is the last one kept at or before it
        out.append(shown)
    return out


def serve_corpus() -> Iterator[LoopbackCDN]:
    """The HLS corpus (built once per content), on a loopback CDN of its own."""
    root = corpus.build(CACHE.parent / "hls-corpus")
    with LoopbackCDN(root) as server:
        yield server


def cut_context(tmp_path: Path, redis_url: str) -> Iterator[Context]:
    """A pipeline context to cut with, on this test's directories and Redis db."""
    yield Context(_settings(tmp_path, redis_url))
    # a test's background prefetches end with it: none reaches the next test's server on a reused port
    deadline = time.monotonic() + 30
    while prefetch.pending() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture(scope="module")
def corpus_cdn() -> Iterator[LoopbackCDN]:
    yield from serve_corpus()


@pytest.fixture
def ctx(tmp_path: Path, redis_url: str) -> Iterator[Context]:
    yield from cut_context(tmp_path, redis_url)


def _settings(tmp_path: Path, redis_url: str) -> Settings:
    return load_settings(
        {
            "CLIPLINE_REDIS_URL": redis_url,
            "CLIPLINE_WORK_DIR": str(tmp_path / "work"),
            "CLIPLINE_MEDIA_DIR": str(tmp_path / "media"),
            "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
            "CLIPLINE_HTTP_TIMEOUT_S": "5",
            "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",
        }
    )


def view_for(url: str, windows: list[tuple[int, int, int]], height: int = 90, width: int = 160) -> JobView:
    lines: list[dict[str, Any]] = []
    t = 0
    for i, (start, end, slot_ms) in enumerate(windows):
        clip = {"video_id": "v", "start_ms": start, "end_ms": end, "hls_url": url}
        lines.append({"text": f"l{i}", "start_ms": t, "end_ms": t + slot_ms, "clip": clip})
        t += slot_ms
    req = parse_request(
        {
            "job_id": f"hls-{secrets.token_hex(5)}",
            "output": {"width": width, "height": height, "fps": 30},
            "lines": lines,
        },
        allowed_hosts=frozenset(),
    )
    return JobView(req, build_slots(req))


#: rotated and mirrored variants are read turned back upright: tests/integration/test_rotation.py
@pytest.mark.parametrize("name", sorted(n for n, (_, v) in corpus.VARIANTS.items() if not v.orientation))
def test_every_variant_is_cut_frame_exactly(name: str, corpus_cdn: LoopbackCDN, ctx: Context) -> None:
    variant = corpus.VARIANTS[name][1]
    if why := corpus.missing_tool(variant):
        pytest.skip(why)
    long_source = variant.frames > 10 * variant.rate  # 12 s
    windows = WINDOWS + ([(9000, 11000, 2000), (11500, 12000, 500)] if long_source else [])
    view = view_for(corpus_cdn.url(f"hls/{name}/{variant.playlist}"), windows)
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        record = cutting.cut_from_hls(ctx, view, slot.index)
        assert record.path is not None
        shown = read_frames(Path(record.path))
        want = expected(variant, line.clip.start_ms, line.clip.end_ms, slot.frames)
        assert shown == want, (name, slot.index)
        assert (record.source_first_frame, record.source_last_frame) == (want[0], want[-1])
        assert record.cpu_ms and record.cpu_ms > 0


MISPLACED = sorted(n for n, (_, v) in corpus.VARIANTS.items() if v.keyframe_misplaced)


@pytest.mark.parametrize("name", MISPLACED)
def test_the_keyframe_ffmpeg_51_misplaces_is_put_back_and_cut_exactly(
    name: str, corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given fMP4 as ffmpeg 5.1 writes it where a segment's first keyframe is shown after a picture
    # decoded after it (HEVC open GOPs; x264's intra refresh, each recovery point a sync sample): as
    # served, that keyframe has the time of the first picture shown and its own time is free
    folder = corpus_cdn.root / "hls" / name
    served = tmp_path / "served.mp4"
    served.write_bytes((folder / "init.mp4").read_bytes() + (folder / "s001.m4s").read_bytes())
    pts = [p.pts for p in video_packets("ffprobe", served, "mp4", what=name).packets]
    assert len(set(pts)) == len(pts) - 1, name
    # When the windows across every segment's start (each showing such a time) are cut
    windows = [(t * 1000 - 700, t * 1000 + 400, 1100) for t in range(1, 6)]
    view = view_for(corpus_cdn.url(f"hls/{name}/index.m3u8"), windows)
    # Then every frame is the one the frame rule names (they were refused: "two frames share pts")
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        record = cutting.cut_from_hls(ctx, view, slot.index)
        want = expected(corpus.VARIANTS[name][1], line.clip.start_ms, line.clip.end_ms, slot.frames)
        assert read_frames(Path(record.path or "")) == want, (name, slot.index)


def test_a_discontinuity_starting_at_a_misplaced_keyframe_is_anchored_at_its_real_time(
    corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given hevc_open_gop's segments listed with an #EXT-X-DISCONTINUITY before the third (a playlist
    # spliced there): that discontinuity's timeline is anchored by its first keyframe's time, a time
    # ffmpeg 5.1 wrote two frames early (its leading pictures') in that segment
    src = corpus_cdn.root / "hls" / "hevc_open_gop"
    folder = tmp_path / "cdn" / "hls" / "spliced"
    shutil.copytree(src, folder)
    lines = (src / "index.m3u8").read_text().splitlines()
    at = lines.index("s002.m4s") - 1  # its #EXTINF
    (folder / "index.m3u8").write_text("\n".join([*lines[:at], "#EXT-X-DISCONTINUITY", *lines[at:], ""]))
    # When windows after the splice are cut, one of them from a segment after the anchor's (the anchor
    # then read from the first bytes of its segment)
    with LoopbackCDN(tmp_path / "cdn") as cdn:
        view = view_for(cdn.url("hls/spliced/index.m3u8"), [(2000, 3000, 1000), (3100, 3900, 800)])
        for slot, line in zip(view.slots, view.request.lines, strict=True):
            record = cutting.cut_from_hls(ctx, view, slot.index)
            # Then the frames are the frame rule's, not two frames early
            want = expected(
                corpus.VARIANTS["hevc_open_gop"][1], line.clip.start_ms, line.clip.end_ms, slot.frames
            )
            assert read_frames(Path(record.path or "")) == want, slot.index


@pytest.mark.parametrize("name", MISPLACED)
def test_frames_sharing_a_timestamp_the_repair_does_not_take_are_refused_where_shown_never_guessed(
    name: str, corpus_cdn: LoopbackCDN, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same files where the repair finds no shape it takes (as fragments of another shape)
    monkeypatch.setattr(fmp4_times, "repair", lambda data: (data, 0))
    view = view_for(corpus_cdn.url(f"hls/{name}/index.m3u8"), [(2990, 4010, 1100), (5400, 7000, 1600)])
    # When a window shows a time two frames claim, it is refused (its slot goes to fallback), never
    # off by one
    with pytest.raises(SourceInvalid, match="two frames share pts"):
        cutting.cut_from_hls(ctx, view, 0)
    # and a window clear of them is cut exactly (intra refresh: from a recovery point whose sweep
    # ended before the window, never from the one at 5 s, whose frames before 164 ffmpeg drops)
    record = cutting.cut_from_hls(ctx, view, 1)
    want = expected(corpus.VARIANTS[name][1], 5400, 7000, view.slots[1].frames)
    assert read_frames(Path(record.path or "")) == want


@pytest.mark.parametrize("name", ["mpeg2_anamorphic", "h264_anamorphic", "h264_anamorphic_fmp4"])
def test_pixels_that_are_not_square_are_fitted_at_the_aspect_they_are_shown_at(
    name: str, corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given 16:9 stored in 128x90 pixels, each shown 5:4 wide (the MPEG-2 sequence header's aspect,
    # the H.264 VUI's, the fMP4 pasp box's): 160x90 on screen
    url = corpus_cdn.url(f"hls/{name}/index.m3u8")
    # When a window is cut for a 4:3 job (160x120)
    view = view_for(url, [(1234, 2900, 1500)], height=120)
    record = cutting.cut_from_hls(ctx, view, 0)
    # Then the picture is 160x90, letterboxed (it was 160x113: 128x90 stretched as if square), from
    # row 14 (pad puts it on an even row, for 4:2:0 chroma)
    assert _picture_box(Path(record.path or "")) == (160, 90, 0, 14)


@pytest.mark.parametrize("name", ["mpeg2_interlaced", "h264_interlaced", "h264_interlaced_fmp4"])
def test_interlaced_frames_are_made_progressive_at_their_first_fields_moment(
    name: str, corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given 30 interlaced 192x108 frames a second whose two fields were shot 1/60 s apart (top first)
    # and whose every edge moves
    view = view_for(corpus_cdn.url(f"hls/{name}/index.m3u8"), [(1234, 2900, 1500)], height=108, width=192)
    # When a window is cut at the source's own size (scaling down blends the fields, hiding the combs)
    record = cutting.cut_from_hls(ctx, view, 0)
    # Then ffmpeg's interlace detector finds the clip's frames progressive (all 45 were combed before)
    found = _interlace_detected(Path(record.path or ""))
    assert found["TFF"] + found["BFF"] <= 2 and found["Progressive"] >= 40, found


@pytest.mark.parametrize(
    ("name", "sdr_name"), [("hevc_pq", "hevc_fmp4"), ("hevc_main10_hlg", "hevc_fmp4"), ("h264_pq_ts", "ts")]
)
def test_hdr_pictures_are_tone_mapped_to_look_as_their_sdr_original(
    name: str, sdr_name: str, corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given the pattern converted to HDR (BT.2020, PQ or HLG, its white at BT.2408's 203 cd/m2), and
    # the same pattern in SDR, as the same encoder and packager made them (HEVC in fMP4; H.264 in
    # MPEG-TS, whose HDR the Python MPEG-TS reader leaves to ffprobe)
    window = [(1234, 2900, 1500)]
    hdr = cutting.cut_from_hls(ctx, view_for(corpus_cdn.url(f"hls/{name}/index.m3u8"), window), 0)
    sdr = cutting.cut_from_hls(ctx, view_for(corpus_cdn.url(f"hls/{sdr_name}/index.m3u8"), window), 0)
    hdr_path, sdr_path = Path(hdr.path or ""), Path(sdr.path or "")
    # When the HDR window is cut into the job's (SDR, BT.709) clip
    # Then it is tagged BT.709 (it said PQ or HLG, BT.2020, over 8-bit pixels) and looks as the SDR
    # original does: the picture's PSNR against the SDR cut is 24, 23 and 19-21 dB (Y, U, V) here;
    # taken as they were, PQ's pixels were 19, 15 and 12 dB; HLG's 24, 18 and 13 (its luma is made to
    # pass for SDR, its BT.2020 colours are not)
    assert _colour_tags(hdr_path) == ("bt709", "bt709", "bt709"), _colour_tags(hdr_path)
    y, u, v = _picture_psnr(hdr_path, sdr_path)
    assert y >= 22 and u >= 21 and v >= 17.5, (y, u, v)
    assert read_frames(hdr_path) == read_frames(sdr_path)


def _colour_tags(video: Path) -> tuple[str, str, str]:
    """The video stream's transfer, primaries and matrix, as ffprobe reads them."""
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries"]
    argv += ["stream=color_transfer,color_primaries,color_space", "-of", "json", str(video)]
    stream = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)["streams"][0]
    return stream.get("color_transfer"), stream.get("color_primaries"), stream.get("color_space")


def _picture_psnr(a: Path, b: Path) -> tuple[float, float, float]:
    """ffmpeg's PSNR (Y, U, V, dB) between the pictures below the code band of two clips."""
    graph = "[0]crop=iw:ih*2/3:0:ih/3[a];[1]crop=iw:ih*2/3:0:ih/3[b];[a][b]psnr"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(a), "-i", str(b), "-filter_complex", graph]
    err = subprocess.run([*argv, "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    y, u, v = re.findall(r"PSNR y:([\d.]+) u:([\d.]+) v:([\d.]+)", err)[-1]
    return float(y), float(u), float(v)


def _interlace_detected(video: Path) -> dict[str, int]:
    """ffmpeg's ``idet``: how many frames it finds interlaced (TFF, BFF), progressive or undetermined,
    each frame judged alone."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(video), "-vf", "idet", "-f", "null", "-"]
    err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    line = next(x for x in err.splitlines() if "Single frame detection" in x)
    return {k: int(v) for k, v in re.findall(r"(\w+):\s*(\d+)", line.split("detection:")[1])}


def _picture_box(video: Path) -> tuple[int, int, int, int]:
    """The picture's box inside the padding (width, height, x, y), as ffmpeg's cropdetect finds it."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(video), "-vf", "cropdetect=limit=24:round=2"]
    err = subprocess.run([*argv, "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    w, h, x, y = re.findall(r"crop=(\d+):(\d+):(\d+):(\d+)", err)[-1]
    return int(w), int(h), int(x), int(y)


@pytest.mark.parametrize("name", ["ts", "fmp4", "single_file", "fmp4_single_file", "aes"])
def test_decoding_starts_at_the_keyframe_before_the_window_not_at_the_segment(
    name: str, corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given 1-second segments with a keyframe every 15 frames (0.5 s), and a window from 2.5 s:
    # its segment starts at 2.0 s, its keyframe at 2.5 s
    variant = corpus.VARIANTS[name][1]
    view = view_for(corpus_cdn.url(f"hls/{name}/{variant.playlist}"), [(2500, 3600, 1100)])
    clip, slot = view.request.lines[0].clip, view.slots[0]
    playlist = ctx.resolver.source_for(view.job_id, "v", clip.hls_url, 90)
    times = output_times(clip.start_ms, 1100, slot.fps, slot.frames)
    segments = select_segments(playlist, clip.start_ms, clip.end_ms)
    # When the window is planned
    planned = HlsInputs(ctx, view.job_id, "v", playlist, tmp_path).plan(segments, times)
    # Then the input ffmpeg decodes holds no frame before that keyframe (not the segment's first 15)
    (cut_input,) = planned.inputs
    probe = video_packets(ctx.ffprobe, cut_input.path, cut_input.fmt)
    assert planned.picks[0].source_frame == 75
    assert [p for p in probe.display_pts if p < planned.picks[0].pts] == []
    assert len(probe.packets) == 45  # frames 75-119: the rest of segment 2 and segment 3
    # and the cut from it still shows exactly the planned frames
    record = cutting.cut_from_hls(ctx, view, 0)
    assert read_frames(Path(record.path or "")) == expected(variant, 2500, 3600, slot.frames)


def test_the_next_slots_segments_are_fetched_while_a_clip_encodes_and_counted_once(
    corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given a job whose second slot needs segments 2 and 3, which the first slot does not
    view = view_for(corpus_cdn.url("hls/ts/index.m3u8"), [(0, 1000, 1000), (2500, 3600, 1100)])
    ctx.completion.mark_planned(view.job_id)
    corpus_cdn.reset_counters()
    segments = ctx.segments.root(view.job_id, "v")
    # When the first slot is cut
    first = cutting.cut_from_hls(ctx, view, 0)
    deadline = time.monotonic() + 30
    while prefetch.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    # Then the second slot's segments were fetched in the background, counted as unclaimed
    assert (segments / "000002.seg").exists() and (segments / "000003.seg").exists()
    served = corpus_cdn.total_bytes("/hls/ts/")
    want = sum((corpus_cdn.root / "hls" / "ts" / f"s00{i}.ts").stat().st_size for i in (2, 3))
    assert ctx.segments.unclaimed_prefetch_bytes(view.job_id) == want
    # and cutting it fetches nothing more, yet its record counts those bytes (once)
    second = cutting.cut_from_hls(ctx, view, 1)
    assert corpus_cdn.total_bytes("/hls/ts/") == served
    assert second.bytes_fetched == want
    assert ctx.segments.unclaimed_prefetch_bytes(view.job_id) == 0
    playlist = (corpus_cdn.root / "hls" / "ts" / "index.m3u8").stat().st_size
    assert first.bytes_fetched + second.bytes_fetched + playlist == served
    assert read_frames(Path(second.path or "")) == expected(corpus.VARIANTS["ts"][1], 2500, 3600, 33)


def test_a_prefetch_never_waits_behind_a_segment_someone_is_fetching(
    corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    view = view_for(corpus_cdn.url("hls/ts/index.m3u8"), [(2500, 3600, 1100)])
    ctx.completion.mark_planned(view.job_id)
    clip = view.request.lines[0].clip
    playlist = ctx.resolver.source_for(view.job_id, "v", clip.hls_url, 90)
    segments = select_segments(playlist, 2500, 3600)
    corpus_cdn.reset_counters()
    # Given a clip holding the lock of the window's first segment (its download under way)
    with leases.held(ctx.redis, keys.segment_lock(view.job_id, "v", f"{segments[0].seq:06d}.seg"), wait_s=1):
        # When a prefetch warms the window
        started = time.monotonic()
        ctx.segments.fetch(view.job_id, "v", segments, prefetch=True)
        took = time.monotonic() - started
    # Then it fetched the other segment and left the held one to its holder, without waiting for it
    root = ctx.segments.root(view.job_id, "v")
    assert not (root / f"{segments[0].seq:06d}.seg").exists()
    assert (root / f"{segments[1].seq:06d}.seg").exists()
    assert took < 2
    assert corpus_cdn.count("/hls/ts/s") == 1


class _CountingBytes(Observer):
    def __init__(self) -> None:
        self.nbytes = 0
        self._lock = threading.Lock()

    def bytes_fetched(self, nbytes: int) -> None:
        with self._lock:
            self.nbytes += nbytes


def test_prefetched_bytes_no_clip_used_are_in_the_jobs_bytes_fetched(
    corpus_cdn: LoopbackCDN, tmp_path: Path, redis_url: str
) -> None:
    observer = _CountingBytes()
    ctx = Context(_settings(tmp_path, redis_url), observer)
    # Given a running job whose second slot's segments were prefetched, a slot that never uses them
    view = view_for(corpus_cdn.url("hls/ts/index.m3u8"), [(0, 1000, 1000), (2500, 3600, 1100)])
    ctx.completion.mark_planned(view.job_id)
    playlist = ctx.resolver.source_for(view.job_id, "v", view.request.lines[1].clip.hls_url, 90)
    corpus_cdn.reset_counters()
    ctx.segments.fetch(view.job_id, "v", select_segments(playlist, 2500, 3600), prefetch=True)
    prefetched = corpus_cdn.total_bytes("/hls/ts/")
    assert prefetched > 0
    # When the job's statistics are taken with only the first slot cut (the second went elsewhere)
    first = cutting.cut_from_hls(ctx, view, 0)
    deadline = time.monotonic() + 30
    while prefetch.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = assembly._stats(ctx, view, {0: first})
    # Then its bytes_fetched is every byte the CDN served it, the unused prefetch included
    playlist_bytes = (corpus_cdn.root / "hls" / "ts" / "index.m3u8").stat().st_size
    assert stats.bytes_fetched == corpus_cdn.total_bytes("/hls/ts/") + playlist_bytes
    assert stats.bytes_fetched == first.bytes_fetched + prefetched + playlist_bytes
    # and the bytes_fetched metric counted each of them once, when it was downloaded
    assert observer.nbytes == stats.bytes_fetched


@pytest.mark.parametrize("ended", ["assembly fired", "keys forgotten"])
def test_a_prefetch_that_finishes_after_its_job_ended_leaves_nothing_behind(
    ended: str, corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given a job whose assembly has fired (its files about to be swept) or that has ended
    view = view_for(corpus_cdn.url("hls/ts/index.m3u8"), [(2500, 3600, 1100)])
    playlist = ctx.resolver.source_for(view.job_id, "v", view.request.lines[0].clip.hls_url, 90)
    if ended == "assembly fired":
        ctx.completion.mark_planned(view.job_id)
        ctx.redis.set(keys.job_assemble_fired(view.job_id), "1")
    job_dir = ctx.settings.work_dir / view.job_id
    files.remove_tree(job_dir)  # the sweep ran before the prefetch's download finished
    job_dir.mkdir(parents=True)  # ... or while it ran: the prefetch's folders reappear
    # When a prefetch of its segments finishes now
    corpus_cdn.reset_counters()
    prefetch._warm(ctx, view, 0)
    # Then it did fetch them, but what it wrote is gone again, with the job's folder, and nothing is
    # counted
    assert corpus_cdn.count("/hls/ts/s") == len(select_segments(playlist, 2500, 3600)) == 2
    assert not job_dir.exists()
    assert ctx.segments.unclaimed_prefetch_bytes(view.job_id) == 0
    ctx.completion.forget(view.job_id)


@pytest.mark.parametrize(
    ("name", "iframes", "media"),
    [("shaka_ts", "iframe.m3u8", "v_"), ("bento4_single", "iframes.m3u8", "media.ts")],
)
def test_an_i_frame_playlist_is_refused_naming_it(
    name: str, iframes: str, media: str, corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given a packager's I-frame playlist (keyframes only, each a byte range, for trick play; Bento4's
    # says #EXT-X-TARGETDURATION:0)
    variant = corpus.VARIANTS[name][1]
    if why := corpus.missing_tool(variant):
        pytest.skip(why)
    view = view_for(corpus_cdn.url(f"hls/{name}/{iframes}"), [(1000, 2000, 1000)])
    # When a window of it is cut, it is refused before any segment is fetched, never cut as video
    corpus_cdn.reset_counters()
    with pytest.raises(SourceInvalid, match="I-FRAMES-ONLY"):
        cutting.cut_from_hls(ctx, view, 0)
    assert corpus_cdn.count(f"/hls/{name}/{media}") == 0


def test_variables_carry_the_masters_signed_token_to_every_segment(
    corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given a master whose URL holds a token its playlists pass on through #EXT-X-DEFINE QUERYPARAM
    view = view_for(corpus_cdn.url("hls/variables/index.m3u8?token=t0k%2Fen%3D"), [(1234, 2900, 1500)])
    corpus_cdn.reset_counters()
    # When a window is cut (frame-exact: test_every_variant_is_cut_frame_exactly)
    cutting.cut_from_hls(ctx, view, 0)
    # Then the media playlist and every segment were asked for with the token (percent-decoded: RFC)
    asked = [r for r in corpus_cdn.requests if r.path.startswith("/hls/variables/r/")]
    assert {r.path for r in asked} >= {"/hls/variables/r/media.m3u8", "/hls/variables/r/s001.ts"}
    assert {r.query for r in asked} == {"token=t0k/en="}


def test_a_prefetch_while_redis_lost_a_running_jobs_keys_removes_only_its_own_files(
    corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    # Given a running job whose Redis keys are gone (a restart; the next clip restores them), with a
    # segment a clip fetched in its cache
    view = view_for(corpus_cdn.url("hls/ts/index.m3u8"), [(0, 1000, 1000), (2500, 3600, 1100)])
    playlist = ctx.resolver.source_for(view.job_id, "v", view.request.lines[0].clip.hls_url, 90)
    ctx.segments.fetch(view.job_id, "v", select_segments(playlist, 0, 1000))
    kept = sorted(ctx.segments.root(view.job_id, "v").glob("*.seg"))
    assert kept
    # When a prefetch of the next slot's segments finishes
    prefetch._warm(ctx, view, 1)
    # Then it took back only what it wrote: the clip's segments stay
    assert sorted(ctx.segments.root(view.job_id, "v").glob("*.seg")) == kept


def test_a_codec_change_without_a_discontinuity_is_refused_naming_it(tmp_path: Path, ctx: Context) -> None:
    # Given segments 0-2 in H.264 and 3-5 in HEVC on one timeline, with no #EXT-X-DISCONTINUITY
    root = tmp_path / "cdn" / "hls" / "mixed"
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXT-X-PLAYLIST-TYPE:VOD"]
    codecs = (["-c:v", "libx264"], ["-c:v", "libx265", "-x265-params", "log-level=error"])
    for half, codec in enumerate(codecs):
        sub = root / f"e{half}"
        sub.mkdir(parents=True)
        source = ("-f", "lavfi", "-i", pattern_graph(6, 160, 90, 30))
        corpus.ff(*source, *codec, "-g", "15", "-bf", "0", *corpus._hls(sub, 1))
        entries = (sub / "index.m3u8").read_text().split("#EXTINF")[1:]
        for entry in entries[half * 3 : half * 3 + 3]:
            extinf, uri = entry.strip().splitlines()[:2]
            lines += [f"#EXTINF{extinf}", f"e{half}/{uri}"]
    (root / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    with LoopbackCDN(tmp_path / "cdn") as cdn:
        view = view_for(cdn.url("hls/mixed/index.m3u8"), [(2500, 3600, 1100)])
        # When a window across the change is cut, it is refused naming both codecs (one decoder would
        # have read the other's data: "missing picture in access unit")
        with pytest.raises(SourceInvalid, match="stream type 0x24 where segment 2 carries 0x1B"):
            cutting.cut_from_hls(ctx, view, 0)


@pytest.fixture
def damaged(tmp_path: Path, corpus_cdn: LoopbackCDN) -> Iterator[tuple[Path, LoopbackCDN]]:
    """A copy of the MPEG-TS variant that a test may damage, on its own loopback CDN."""
    root = tmp_path / "cdn"
    shutil.copytree(corpus_cdn.root / "hls" / "ts", root / "hls" / "ts")
    with LoopbackCDN(root) as server:
        yield root / "hls" / "ts", server


def test_a_window_needing_a_gap_segment_goes_to_fallback(
    damaged: tuple[Path, LoopbackCDN], ctx: Context
) -> None:
    folder, cdn = damaged
    text = (
        (folder / "index.m3u8")
        .read_text()
        .replace("#EXTINF:1.000000,\ns002.ts", "#EXT-X-GAP\n#EXTINF:1.000000,\ns002.ts")
    )
    (folder / "gap.m3u8").write_text(text)
    view = view_for(cdn.url("hls/ts/gap.m3u8"), [(0, 1000, 1000), (2100, 2600, 500)])
    assert read_frames(Path(cutting.cut_from_hls(ctx, view, 0).path or "")) == list(range(30))
    with pytest.raises(SourceGap, match="EXT-X-GAP"):
        cutting.cut_from_hls(ctx, view, 1)


def test_segments_with_no_keyframe_before_them_are_an_error_never_a_wrong_frame(
    corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path
) -> None:
    # Given the mid-GOP variant listed without its first segment, so that its first listed segments
    # start after the keyframe at frame 0 and before the one at frame 45
    root = tmp_path / "cdn" / "hls" / "ts_mid_gop"
    shutil.copytree(corpus_cdn.root / "hls" / "ts_mid_gop", root)
    lines = (root / "index.m3u8").read_text().splitlines()
    first = lines.index("m0.ts")
    (root / "late.m3u8").write_text("\n".join(lines[: first - 1] + lines[first + 1 :]) + "\n")
    with LoopbackCDN(tmp_path / "cdn") as cdn:
        view = view_for(cdn.url("hls/ts_mid_gop/late.m3u8"), [(100, 600, 500)])
        # When a window before the first keyframe is cut, it is refused: nothing could decode it
        with pytest.raises(SourceInvalid, match="no keyframe"):
            cutting.cut_from_hls(ctx, view, 0)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "frames_missing"])
def test_a_damaged_segment_is_an_error_never_a_wrong_frame(
    damage: str, damaged: tuple[Path, LoopbackCDN], ctx: Context
) -> None:
    folder, cdn = damaged
    seg = folder / "s002.ts"
    data = seg.read_bytes()
    if damage == "truncated":
        seg.write_bytes(data[:-100])
    elif damage == "garbage":
        seg.write_bytes(bytes(secrets.token_bytes(len(data))))
    else:  # whole packets, but the second half of the segment's frames are gone
        seg.write_bytes(data[: len(data) // 2 // 188 * 188])
    view = view_for(cdn.url("hls/ts/index.m3u8"), [(2600, 3400, 800)])
    with pytest.raises(SourceInvalid):
        cutting.cut_from_hls(ctx, view, 0)


def test_single_file_hls_fetches_only_the_byte_ranges_the_window_needs(
    corpus_cdn: LoopbackCDN, ctx: Context
) -> None:
    """Byte ranges go through the job's segment cache: fetched once, counted, never the whole file."""
    folder = corpus_cdn.root / "hls" / "single_file"
    media = folder / "index.ts"
    playlist = parse_playlist(
        (folder / "index.m3u8").read_text(), corpus_cdn.url("hls/single_file/index.m3u8")
    )
    assert isinstance(playlist, MediaPlaylist)
    ranges = {s.seq: (s.offset, s.length) for s in playlist.segments}
    corpus_cdn.reset_counters()
    view = view_for(corpus_cdn.url("hls/single_file/index.m3u8"), [(1234, 1900, 666), (1500, 1800, 300)])
    first = cutting.cut_from_hls(ctx, view, 0)
    media_requests = [r for r in corpus_cdn.requests if r.path.endswith("/index.ts")]
    # segment 1 (1-2 s) and at most the first bytes of segment 0 (the anchor's first timestamp)
    assert media_requests and all(r.status == 206 for r in media_requests)
    served = sum(r.bytes for r in media_requests)
    assert (ranges[1][1] or 0) < served <= (ranges[0][1] or 0) + (ranges[1][1] or 0) < media.stat().st_size
    assert first.bytes_fetched == served and first.segments_fetched >= 1
    # A second clip of the same window: every range comes from the job's cache, nothing is fetched.
    second = cutting.cut_from_hls(ctx, view, 1)
    assert len([r for r in corpus_cdn.requests if r.path.endswith("/index.ts")]) == len(media_requests)
    assert second.bytes_fetched == 0 and second.segments_shared >= 1
    assert read_frames(Path(second.path or "")) == list(range(45, 54))


def test_an_aes_key_is_fetched_once_per_job_and_never_logged(
    corpus_cdn: LoopbackCDN, ctx: Context, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    corpus_cdn.reset_counters()
    view = view_for(
        corpus_cdn.url("hls/aes/index.m3u8"), [(0, 1000, 1000), (2500, 3600, 1100), (4000, 5000, 1000)]
    )
    variant = corpus.VARIANTS["aes"][1]
    for slot, line in zip(view.slots, view.request.lines, strict=True):
        record = cutting.cut_from_hls(ctx, view, slot.index)
        want = expected(variant, line.clip.start_ms, line.clip.end_ms, slot.frames)
        assert read_frames(Path(record.path or "")) == want
    assert corpus_cdn.count("/hls/aes/k.key") == 1
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert corpus.KEY.hex() not in text.lower() and repr(corpus.KEY) not in text


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.replace("#EXT-X-ENDLIST\n", ""), "VOD playlist without #EXT-X-ENDLIST"),
        (
            lambda t: t.replace("#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-PLAYLIST-TYPE:EVENT").replace(
                "#EXT-X-ENDLIST\n", ""
            ),
            "EVENT playlist without #EXT-X-ENDLIST",
        ),
        (
            lambda t: t.replace("#EXT-X-PLAYLIST-TYPE:VOD\n", "").replace("#EXT-X-ENDLIST\n", ""),
            "LIVE playlist without #EXT-X-ENDLIST",
        ),
        (
            lambda t: t.replace(
                "#EXTINF:1.000000,\ns002.ts",
                '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k.key"\n#EXTINF:1.000000,\ns002.ts',
            ),
            "METHOD=SAMPLE-AES",
        ),
        (
            lambda t: t.replace(
                "#EXTINF:1.000000,\ns002.ts",
                '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://k",KEYFORMAT="com.apple.streamingkeydelivery"\n#EXTINF:1.000000,\ns002.ts',
            ),
            "KEYFORMAT=com.apple.streamingkeydelivery",
        ),
    ],
)
def test_live_event_sample_aes_and_drm_playlists_are_refused_before_any_segment_is_fetched(
    edit: Any, match: str, damaged: tuple[Path, LoopbackCDN], ctx: Context
) -> None:
    folder, cdn = damaged
    (folder / "refused.m3u8").write_text(edit((folder / "index.m3u8").read_text()))
    view = view_for(cdn.url("hls/ts/refused.m3u8"), [(0, 1000, 1000)])
    with pytest.raises(SourceInvalid, match=match) as caught:
        cutting.cut_from_hls(ctx, view, 0)
    assert cdn.url("hls/ts/refused.m3u8") in str(caught.value)
    assert [r.path for r in cdn.requests] == ["/hls/ts/refused.m3u8"]


def test_an_aes_key_on_a_host_not_allowed_is_never_fetched(
    tmp_path: Path, corpus_cdn: LoopbackCDN, redis_url: str
) -> None:
    """Key URIs pass the same host allowlist as playlists and segments."""
    root = tmp_path / "cdn"
    shutil.copytree(corpus_cdn.root / "hls" / "aes", root / "hls" / "aes")
    with LoopbackCDN(root) as cdn:
        elsewhere = cdn.url("hls/aes/k.key").replace("127.0.0.1", "localhost")
        text = (root / "hls" / "aes" / "index.m3u8").read_text().replace('URI="k.key"', f'URI="{elsewhere}"')
        (root / "hls" / "aes" / "elsewhere.m3u8").write_text(text)
        settings = load_settings(
            {
                "CLIPLINE_REDIS_URL": redis_url,
                "CLIPLINE_WORK_DIR": str(tmp_path / "work"),
                "CLIPLINE_MEDIA_DIR": str(tmp_path / "media"),
                "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
                "CLIPLINE_ALLOWED_HOSTS": "127.0.0.1",
                "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",  # the loopback CDN
            }
        )
        view = view_for(cdn.url("hls/aes/elsewhere.m3u8"), [(0, 1000, 1000)])
        with pytest.raises(SourceInvalid, match="'localhost' is not in CLIPLINE_ALLOWED_HOSTS"):
            cutting.cut_from_hls(Context(settings), view, 0)
        assert cdn.count("/hls/aes/k.key") == 0


def test_threads_anchoring_one_source_at_once_do_not_trip_over_each_other(
    corpus_cdn: LoopbackCDN, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clip thread and a prefetch thread of one worker may anchor the same discontinuity at once:
    both write its cached anchor, and neither may fail (each needs a temporary name of its own)."""
    import os
    import threading

    variant = corpus.VARIANTS["ts"][1]
    view = view_for(corpus_cdn.url(f"hls/ts/{variant.playlist}"), [(2500, 3600, 1100)])
    playlist = ctx.resolver.source_for(view.job_id, "v", view.request.lines[0].clip.hls_url, 90)
    real_replace, meet = os.replace, threading.Barrier(2)

    def replace_together(src: Any, dst: Any) -> None:
        if Path(dst).name == "anchor-0.json":
            meet.wait(10)  # both threads have written their temporary file: now both publish it
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_together)
    for attempt in range(2):
        cache = ctx.segments.root(view.job_id, "v") / "anchor-0.json"
        cache.unlink(missing_ok=True)
        errors: list[BaseException] = []

        def anchor(scratch: Path, errors: list[BaseException]) -> None:
            try:
                HlsInputs(ctx, view.job_id, "v", playlist, scratch)._anchor(0)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=anchor, args=(tmp_path / f"{attempt}-{n}", errors)) for n in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == [], errors
        assert cache.exists()
