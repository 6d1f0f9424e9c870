"""An HLS window as cut inputs: the segments it needs, grouped into local files, probed and planned.

Segments are grouped into runs (consecutive segments of one discontinuity and
one init section); each run becomes one local file: MPEG-TS segments joined
with their continuity counters renumbered (``mpegts.join``), fMP4 segments
behind their init section. Each discontinuity is anchored by its first
segment's first video timestamp (read from the segment's first bytes when the
window does not need that segment, fetched while the window's segments arrive).
The frame rule then picks every output
frame; a pick that needs frames of a neighbouring segment (``#EXTINF`` off
from the real durations) fetches it and plans again. Finally each run is
started at the keyframe at or before its first pick, so decoding starts there
rather than at the start of the segment: an MPEG-TS run from that keyframe's
packet (``mpegts.from_position``), an fMP4 run (byte ranges included) by
rewriting the fragment that holds it (``fmp4.from_sample``). The cut file is
probed again (unless it is MPEG-TS far from a timestamp wrap: the same PES, the same
PTS) and the run's timestamps follow any shift, so the frame rule
picks the same frames. (A local copy seeks to its keyframe through its index:
``cutting.cut_from_local``.)
"""

from __future__ import annotations

import bisect
import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from . import files, fmp4, fmp4_times, mpegts, parameter_sets, recovery, ts_packets
from .context import Context
from .errors import SourceInvalid, SourceNotFound
from .ffmpeg_args import CutInput
from .frame_rule import Anchor, FramesMissing, NeedSegments, Pick, Run, plan
from .hls import MAX_SEGMENTS_PER_WINDOW, MediaPlaylist, Segment
from .probe import Packet, VideoProbe, video_packets

#: MPEG-TS timestamps count a 90 kHz clock.
TS_TIME_BASE = Fraction(1, 90_000)

#: How many times a window may grow by a neighbouring segment before it is refused: #EXTINF durations
#: that differ from the timestamps, a B-frame left in the next segment, segments that start mid-GOP
#: (back to the keyframe: one segment, then 2, 4, ... more, so a GOP of many segments, such as a
#: keyframe every 10 s in 1-second segments, is reached in a few steps; at most
#: ``hls.MAX_SEGMENTS_PER_WINDOW`` segments in all).
MAX_EXTENSIONS = 8


class SourceGap(SourceNotFound):
    """The window needs frames of an ``#EXT-X-GAP`` segment: treated like a missing source."""


@dataclass
class Planned:
    inputs: list[CutInput]
    runs: list[Run]
    picks: list[Pick]
    bytes_fetched: int = 0
    fetched: int = 0
    shared: int = 0
    cpu_ms: float = 0.0


def _group(segments: list[Segment]) -> list[list[Segment]]:
    groups: list[list[Segment]] = []
    for s in segments:
        if groups and (groups[-1][-1].discontinuity, groups[-1][-1].init) == (s.discontinuity, s.init):
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def _check_gaps(playlist: MediaPlaylist, segments: list[Segment]) -> None:
    gaps = [s.seq for s in segments if s.gap]
    if gaps:
        raise SourceGap(f"the window needs #EXT-X-GAP segment(s) {gaps} of {playlist.url}", url=playlist.url)


def _read_ts(joined: bytes) -> VideoProbe | None:
    """The joined run's packets read in Python (``ts_packets``) when that is exactly what ffprobe would
    list, with ffmpeg reading the PTS unchanged; None otherwise (ffprobe reads the file)."""
    packets = ts_packets.video_packets(joined)
    if not packets or not any(p.key for p in packets):
        return None
    if not mpegts.suffix_reads_the_same([p.pts for p in packets]):
        return None
    return VideoProbe(TS_TIME_BASE, None, "h264", tuple(packets), 0.0)


def _key_before(path: Path, probe: VideoProbe, container: str, first: int) -> tuple[int, Packet] | None:
    """The latest keyframe (decode index, packet) from which ffmpeg decodes whole pictures at display
    PTS ``first``, or None. An H.264 keyframe that is a recovery point recovering only some frames
    later (periodic intra refresh: ``recovery.clean_from``) serves only from there on."""
    keys = sorted(
        ((n, k) for n, k in enumerate(probe.packets) if k.key and k.pts <= first), key=lambda nk: -nk[1].pts
    )
    if probe.codec != "h264" or not keys:
        return keys[0] if keys else None
    data = path.read_bytes()
    picture = recovery.ts_picture(data) if container == "mpegts" else recovery.mp4_picture(data)
    if picture is None:  # no avcC: samples whose NAL units cannot be told apart
        return keys[0]
    for n, k in keys:
        clean = recovery.clean_from(picture, probe.packets, n)
        if clean is not None and clean <= first:
            return n, k
    return None


def _pieces(probe: VideoProbe, ends: list[int]) -> tuple[int, ...]:
    """Per frame in display order, which fetched piece holds it (``ends``: where each piece of the run
    file ends, in bytes); empty when a packet's position is unknown."""
    if any(p.pos is None for p in probe.packets):
        return ()
    return tuple(bisect.bisect_right(ends, p.pos or 0) for p in sorted(probe.packets, key=lambda p: p.pts))


def _keys(
    groups: list[list[Segment]], probes: list[tuple[Path, VideoProbe]], picks: list[Pick]
) -> dict[int, tuple[int, Packet] | None]:
    """Per run that a pick uses: the keyframe its first frame shown decodes from (``_key_before``),
    None where there is none in the run (its segments start mid-GOP: ffmpeg could not decode them)."""
    return {
        i: _key_before(*probes[i], groups[i][0].container, min(p.pts for p in picks if p.run == i))
        for i in sorted({p.run for p in picks})
    }


class HlsInputs:
    def __init__(
        self, ctx: Context, job_id: str, video_id: str, playlist: MediaPlaylist, scratch: Path
    ) -> None:
        self.ctx, self.job_id, self.video_id, self.playlist, self.scratch = (
            ctx,
            job_id,
            video_id,
            playlist,
            scratch,
        )
        self.out = Planned([], [], [])
        self.rates: dict[int, Fraction | None] = {}  # ffprobe's frame rate, per discontinuity (anchors)
        self._ends: dict[Path, list[int]] = {}  # per run file: where each of its pieces ends, in bytes
        self._lock = threading.Lock()

    def plan(self, segments: list[Segment], times: list[Fraction]) -> Planned:
        why = ""
        back = 1  # segments the next keyframe search adds before a run without one
        for _ in range(MAX_EXTENSIONS + 1):
            _check_gaps(self.playlist, segments)
            groups = _group(segments)
            # A discontinuity's anchor (its first segment's head, once per job and video) is fetched
            # while the window's own segments arrive: two round trips overlap instead of following.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="anchor") as pool:
                discontinuities = sorted({g[0].discontinuity for g in groups})
                anchoring = pool.submit(lambda ds: [self._anchor(d) for d in ds], discontinuities)
                probes = [self._run_file(i, g) for i, g in enumerate(groups)]
                anchors = sorted(anchoring.result(), key=lambda a: a.time_s)
            runs = [self._run(g, p, self._ends[p[0]]) for g, p in zip(groups, probes, strict=True)]
            rate = probes[0][1].rate or self.rates.get(groups[0][0].discontinuity)
            try:
                picks = plan(times, anchors, runs, rate)
            except FramesMissing as exc:
                raise SourceInvalid(f"{self.playlist.url}: {exc}", video_id=self.video_id) from exc
            except NeedSegments as need:
                segments = self._extend(segments, need)
                why = "#EXTINF and the real timestamps disagree beyond repair"
                continue
            keys = _keys(groups, probes, picks)
            keyless = next((i for i, key in keys.items() if key is None), None)
            if keyless is not None:  # a segment that starts mid-GOP: decode from an earlier one
                segments = self._extend_to_keyframe(segments, groups[keyless], back)
                why = f"no keyframe in the {back * 2 - 1} segments before segment {groups[keyless][0].seq}"
                back *= 2
                continue
            return self._start_at_keyframes(groups, probes, runs, anchors, times, keys, rate)
        raise SourceInvalid(f"{self.playlist.url}: {why}", video_id=self.video_id)

    # -- segments and runs -----------------------------------------------------------
    def _extend(self, segments: list[Segment], need: NeedSegments) -> list[Segment]:
        mine = [s for s in segments if s.discontinuity == need.discontinuity]
        extra = self.playlist.preceding(mine[0]) if need.before else self.playlist.following(mine[-1])
        if extra is None or extra.discontinuity != need.discontinuity:
            raise SourceInvalid(
                f"{self.playlist.url}: the window's frames are not in its segments' timestamps"
            )
        return sorted({*segments, extra}, key=lambda s: s.seq)

    def _extend_to_keyframe(self, segments: list[Segment], group: list[Segment], count: int) -> list[Segment]:
        """``segments`` with up to ``count`` before ``group`` (those of its discontinuity): its frames
        shown come before any keyframe in it."""
        added: list[Segment] = []
        first = group[0]
        while len(added) < count:
            before = self.playlist.preceding(first)
            if before is None or before.discontinuity != group[0].discontinuity or before in segments:
                break
            added.append(before)
            first = before
        if not added:
            raise SourceInvalid(
                f"{self.playlist.url}: segment {group[0].seq} starts without a keyframe and nothing"
                " before it in its discontinuity (and initialisation section) can be decoded into it",
                video_id=self.video_id,
            )
        if len(segments) + len(added) > MAX_SEGMENTS_PER_WINDOW:
            raise SourceInvalid(
                f"{self.playlist.url}: no keyframe before segment {group[0].seq} within"
                f" {MAX_SEGMENTS_PER_WINDOW} segments of the window",
                video_id=self.video_id,
            )
        return sorted({*segments, *added}, key=lambda s: s.seq)

    def _run_file(self, i: int, group: list[Segment]) -> tuple[Path, VideoProbe]:
        got = self.ctx.segments.fetch(self.job_id, self.video_id, group)
        self._account(got.bytes_fetched, got.fetched, got.shared)
        path = self.scratch / f"run{i}.{'ts' if group[0].container == 'mpegts' else 'mp4'}"
        joined = None
        self._ends[path] = list(itertools.accumulate(p.stat().st_size for p in got.paths))
        try:
            if group[0].container == "mpegts":
                datas = [p.read_bytes() for p in got.paths]
                for s, d in zip(group, datas, strict=True):
                    mpegts.check(d, f"segment {s.seq} of {self.playlist.url}")
                self._one_codec(group, datas)
                joined = mpegts.join(datas)
                path.write_bytes(joined)
            else:  # (a keyframe's time ffmpeg 5.1 wrote wrong put back in place: same bytes, same ends)
                path.write_bytes(fmp4_times.repair(b"".join(p.read_bytes() for p in got.paths))[0])
        except mpegts.NotTransportStream as exc:
            raise SourceInvalid(str(exc), video_id=self.video_id, url=self.playlist.url) from exc
        if joined is not None and (read := _read_ts(joined)) is not None:
            return path, read
        probe = video_packets(
            self.ctx.ffprobe,
            path,
            group[0].container,
            what=f"segments {group[0].seq}-{group[-1].seq}",
            keyless=True,  # segments from inside a GOP: plan() adds the ones before (``_keyless``)
        )
        self._cpu(probe.cpu_ms)
        return path, probe

    def _one_codec(self, group: list[Segment], datas: list[bytes]) -> None:
        """Segments joined into one run carry their video in one codec: a change needs an
        ``#EXT-X-DISCONTINUITY`` before it (RFC 8216), else one decoder would read the other's data."""
        kinds = [mpegts.video_stream_types(d) for d in datas]
        for s, kind in zip(group[1:], kinds[1:], strict=True):
            if kind and kinds[0] and kind != kinds[0]:
                raise SourceInvalid(
                    f"{self.playlist.url}: segment {s.seq} carries video of stream type "
                    f"{', '.join(f'0x{k:02X}' for k in kind)} where segment {group[0].seq} carries "
                    f"{', '.join(f'0x{k:02X}' for k in kinds[0])}, with no #EXT-X-DISCONTINUITY between "
                    "them (RFC 8216 asks one for a codec change)",
                    video_id=self.video_id,
                    url=self.playlist.url,
                )

    def _run(self, group: list[Segment], probe: tuple[Path, VideoProbe], ends: list[int]) -> Run:
        last = self.playlist.following(group[-1])
        more = last is not None and last.discontinuity == group[-1].discontinuity
        pieces = _pieces(probe[1], ends)
        return Run(group[0].discontinuity, probe[1].display_pts, probe[1].time_base, more, pieces)

    def _anchor(self, discontinuity: int) -> Anchor:
        """The discontinuity's first segment's first video timestamp (cached per job and video)."""
        first = self.playlist.first_of_discontinuity(discontinuity)
        cache = self.ctx.segments.root(self.job_id, self.video_id) / f"anchor-{discontinuity}.json"
        time_s = Fraction(str(first.start_s))
        wraps = first.container == "mpegts"
        if cache.exists():
            d = json.loads(cache.read_text())
            self.rates[discontinuity] = Fraction(d["rate"]) if d.get("rate") else None
            return Anchor(discontinuity, time_s, d["pts"], Fraction(d["time_base"]), wraps)
        if first.gap:
            raise SourceGap(
                f"segment {first.seq} of {self.playlist.url} is a gap: no timestamps", url=self.playlist.url
            )
        head, got = self.ctx.segments.head(self.job_id, self.video_id, first)
        self._account(got, 1 if got else 0, 0 if got else 1)
        probe_path = head
        if first.init is not None:
            init = self.ctx.segments.init_path(self.job_id, self.video_id, first.init)
            if not init.exists():
                self._account(
                    self.ctx.segments.fetch(self.job_id, self.video_id, [first]).bytes_fetched, 1, 0
                )
                head = self.ctx.segments.root(self.job_id, self.video_id) / f"{first.seq:06d}.seg"
            probe_path = self.scratch / f"anchor{discontinuity}.mp4"
            probe_path.write_bytes(fmp4_times.repair(init.read_bytes() + head.read_bytes())[0])
        probe = video_packets(
            self.ctx.ffprobe, probe_path, first.container, first_only=True, what=f"segment {first.seq}"
        )
        self._cpu(probe.cpu_ms)
        # Threads of one worker (clips, prefetch) may write it at once: a temporary name per thread.
        self.rates[discontinuity] = probe.rate
        files.write_json_atomic(
            cache,
            {
                "pts": probe.first_key.pts,
                "time_base": str(probe.time_base),
                "rate": str(probe.rate) if probe.rate else None,
            },
        )
        return Anchor(discontinuity, time_s, probe.first_key.pts, probe.time_base, wraps)

    def _cpu(self, ms: float | None) -> None:
        with self._lock:  # the anchor thread and the caller's
            self.out.cpu_ms += ms or 0

    def _account(self, nbytes: int, fetched: int, shared: int) -> None:
        with self._lock:
            self.out.bytes_fetched += nbytes
            self.out.fetched += fetched
            self.out.shared += shared

    # -- decode from the keyframe at or before the window ----------------------------------
    @staticmethod
    def _fmp4_from_sample(path: Path, probe: VideoProbe, n: int) -> Path | None:
        """The fMP4 run from its ``n``-th video packet (a keyframe) on; None when it cannot be cut."""
        data = path.read_bytes()
        try:
            split = next(b.end for b in fmp4.boxes(data) if b.type == b"moov")
        except (fmp4.Unsupported, StopIteration):
            return None
        init, fragments = data[:split], data[split:]
        try:
            total = sum(fmp4.video_sample_counts(fragments, fmp4.video_track_id(init)))
        except fmp4.Unsupported:
            return None
        if total != len(probe.packets):  # packets without timestamps: the indexes would not match
            return None
        cut = fmp4.from_sample(init, fragments, n)
        if cut is None:
            return None
        out = path.with_name(f"{path.stem}k.mp4")
        out.write_bytes(cut)
        return out

    def _ts_from_keyframe(self, path: Path, pos: int, discontinuity: int) -> Path | None:
        """The MPEG-TS run from the keyframe at byte ``pos`` on, with the H.264 parameter sets in front
        of it when it has none of its own (``parameter_sets``); None when the run is that already."""
        data = path.read_bytes()
        try:
            cut = mpegts.from_position(data, pos)
        except mpegts.NotTransportStream:  # no readable PAT to put in front: ffmpeg reads the whole run
            return None
        if parameter_sets.needs_parameter_sets(cut):
            params = parameter_sets.parameter_sets(data[:pos]) or self._first_parameter_sets(discontinuity)
            if params:
                cut = parameter_sets.with_parameter_sets(cut, params)
        if cut is data:
            return None
        out = path.with_name(f"{path.stem}k.ts")
        out.write_bytes(cut)
        return out

    def _first_parameter_sets(self, discontinuity: int) -> bytes | None:
        """The H.264 parameter sets at the start of the discontinuity: from its first segment's head
        (the anchor's, kept in the job's segment cache), read only when a run lacks its own."""
        head, got = self.ctx.segments.head(
            self.job_id, self.video_id, self.playlist.first_of_discontinuity(discontinuity)
        )
        if got:  # not kept any more: fetched again, counted
            self._account(got, 1, 0)
        return parameter_sets.parameter_sets(head.read_bytes())

    def _shift_after_cut(self, cut: Path, fmt: str, probe: VideoProbe, key_pts: int) -> int:
        """How far ffmpeg's timestamps for the cut run are from the whole run's (ticks): 0 without a
        probe for an MPEG-TS run far from a timestamp wrap (``mpegts.suffix_reads_the_same``: the
        bytes from the keyframe on are the same PES with the same PTS), else measured by ffprobe."""
        if fmt == "mpegts" and mpegts.suffix_reads_the_same(probe.display_pts):
            return 0
        again = video_packets(self.ctx.ffprobe, cut, fmt, first_only=True, what=cut.name)
        self._cpu(again.cpu_ms)
        return again.first_key.pts - key_pts

    def _start_at_keyframes(
        self,
        groups: list[list[Segment]],
        probes: list[tuple[Path, VideoProbe]],
        runs: list[Run],
        anchors: list[Anchor],
        times: list[Fraction],
        keys: dict[int, tuple[int, Packet] | None],
        rate: Fraction | None,
    ) -> Planned:
        inputs: list[CutInput] = []
        new_runs: list[Run] = []
        for i, chosen in keys.items():
            path, probe = probes[i]
            n, key = chosen or (0, None)
            cut = None
            if key is not None and groups[i][0].container == "mpegts" and key.pos is not None:
                cut = self._ts_from_keyframe(path, key.pos, groups[i][0].discontinuity)
            elif key is not None and groups[i][0].container != "mpegts" and n > 0:
                cut = self._fmp4_from_sample(path, probe, n)
            run = runs[i]
            if key is not None and cut is not None:
                delta = self._shift_after_cut(cut, groups[i][0].container, probe, key.pts)
                # the anchor offset must be measured from the same frame: keep the run's timeline
                kept = [m for m, p in enumerate(run.pts) if p >= key.pts]
                pieces = tuple(run.pieces[m] for m in kept) if run.pieces else ()
                run = replace(run, pts=tuple(run.pts[m] + delta for m in kept), pieces=pieces)
                path = cut
            container = groups[i][0].container
            inputs.append(CutInput(path, container, interlaced=probe.interlaced, colour=probe.colour))
            new_runs.append(run)
        final = plan(times, anchors, new_runs, rate)
        self.out.inputs, self.out.runs, self.out.picks = inputs, new_runs, final
        return self.out
