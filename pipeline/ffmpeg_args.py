"""ffmpeg/ffprobe command lines, built as argv lists. Pure: nothing here runs anything.

Every clip, whether cut from HLS segments, from a local copy or made as a black
placeholder, goes through the same encoder settings (``EncodeProfile``), so
the assembler can concatenate them with a stream copy.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import ffmpeg  # ffmpeg-python: graph -> argv

from .frame_rule import RunCut
from .models import OutputProfile

GLOBAL_ARGS = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
#: Clip encodes report their own progress on stdout; its last ``frame=`` is the frame count written,
#: which saves an ffprobe per clip (about 90 ms of CPU each on this class of machine).
PROGRESS_ARGS = ["-progress", "pipe:1", "-nostats"]
#: One timescale for every clip: divisible by all integer frame rates up to 60 in common use.
TIMESCALE = 90000


#: Drafts (``output.quality: "draft"``): x264's fastest preset, and a quality that is enough to check
#: the alignment of lines and footage.
DRAFT_PRESET = "ultrafast"
DRAFT_CRF = 28
#: A draft halves the source's width and height: averaging each 2x2 block (swscale's ``area``) costs
#: 5-9 % less of a draft clip's CPU than the default bicubic, with no ringing (bench/clip_cpu.py).
DRAFT_SCALER = "area"


@dataclass(frozen=True)
class EncodeProfile:
    width: int
    height: int
    fps: int
    preset: str = "veryfast"
    crf: int = 20
    threads: int = 0  # x264's, the decoder's and the filters' threads; 0: ffmpeg's pick (``encoder_threads``)
    scaler: str | None = None  # swscale's algorithm when the source is scaled; None: ffmpeg's (bicubic)

    @classmethod
    def for_output(cls, output: OutputProfile, preset: str, crf: int, *, threads: int = 0) -> EncodeProfile:
        """The clips' profile for a request's ``output``: a draft is encoded at its ``frame_size`` (a
        quarter of the pixels) with ``DRAFT_PRESET`` and ``DRAFT_CRF``; a final one as configured."""
        width, height = output.frame_size
        if output.quality == "draft":
            return cls(width, height, output.fps, DRAFT_PRESET, DRAFT_CRF, threads, DRAFT_SCALER)
        return cls(width, height, output.fps, preset, crf, threads)

    def input_kwargs(self) -> dict[str, object]:
        """The decoder's threads: the clip's share of the cores, like the encoder's. Frame threading in a
        decoder whose cores are already busy with other clips costs CPU and buys no wall time (3-6 %
        of a clip's CPU with the filter graph's, ``global_args``; bench/clip_cpu.py)."""
        return {"threads": self.threads} if self.threads > 0 else {}

    def global_args(self) -> list[str]:
        """The filter graph's threads, as many as the decoder's (options before the inputs)."""
        return ["-filter_complex_threads", str(self.threads)] if self.threads > 0 else []

    def output_kwargs(self, frames: int) -> dict[str, object]:
        return {
            **({"threads": self.threads} if self.threads > 0 else {}),
            "frames:v": frames,
            "c:v": "libx264",
            "preset": self.preset,
            "crf": self.crf,
            "pix_fmt": "yuv420p",
            "profile:v": "high",
            "g": self.fps * 2,
            "r": self.fps,
            "video_track_timescale": TIMESCALE,
            # the file's duration exact too: the concat demuxer starts the next clip there (at the
            # default 1000, 32 frames at 60 fps said 0.534 s, and every boundary pushed the rest late)
            "movie_timescale": TIMESCALE,
            "an": None,
            "sn": None,
            "dn": None,
            "map_metadata": -1,
            "f": "mp4",
        }


def encoder_threads(cpus: int, concurrent_clips: int) -> int:
    """x264 threads per clip when ``concurrent_clips`` encodes share ``cpus`` cores: the cores' share,
    at least 1. x264's own default (1.5 threads per core, in every encode) oversubscribes the cores
    when several clips encode at once and spends CPU on frame threading that buys no wall time."""
    return max(1, cpus // max(1, concurrent_clips))


def _with_globals(ffmpeg_bin: str, args: list[str]) -> list[str]:
    """Global options first (ffmpeg-python appends them after the output), then inputs and outputs."""
    return [ffmpeg_bin, *GLOBAL_ARGS, *args]


def _normalise(stream: ffmpeg.nodes.FilterableStream, profile: EncodeProfile, frames: int) -> object:
    """Frame rate, scale with aspect kept, pad to size, square pixels, yuv420p, hold the last frame."""
    hold_s = frames / profile.fps + 1
    return _fit(stream.filter("fps", fps=profile.fps), profile).filter(
        "tpad", stop_mode="clone", stop_duration=f"{hold_s:g}"
    )


def _fit(stream: ffmpeg.nodes.FilterableStream, profile: EncodeProfile) -> ffmpeg.nodes.FilterableStream:
    """Scale with the shown aspect kept, pad to size, square pixels, yuv420p (``_scale_to_fit``,
    ``_pad_to_size``)."""
    return _pad_to_size(_scale_to_fit(stream, profile), profile)


def _scale_to_fit(
    stream: ffmpeg.nodes.FilterableStream, profile: EncodeProfile
) -> ffmpeg.nodes.FilterableStream:
    """Scale to fit the profile's frame with the shown aspect kept; the pixel format as it is.

    The aspect kept is the one the picture is shown at (``iw * sar / ih``), not its pixels': a source
    whose pixels are not square (16:9 stored in 720x576 or 1440x1080, as broadcasts do) fills a 16:9
    frame. ``scale``'s own ``force_original_aspect_ratio`` keeps the stored ``iw / ih`` and so
    squeezed such a picture into a pillarbox. The sizes are rounded as that option rounds them, so a
    source with square pixels is scaled exactly as before.
    """
    w, h = profile.width, profile.height
    return stream.filter(
        "scale",
        f"min({w},round({h}*iw*sar/ih))",
        f"min({h},round({w}*ih/(iw*sar)))",
        **({"flags": profile.scaler} if profile.scaler else {}),
    )


def _pad_to_size(
    stream: ffmpeg.nodes.FilterableStream, profile: EncodeProfile
) -> ffmpeg.nodes.FilterableStream:
    """Pad a fitted picture to the profile's frame, centred, square pixels, yuv420p."""
    return (
        stream.filter("pad", profile.width, profile.height, "(ow-iw)/2", "(oh-ih)/2", color="black")
        .filter("setsar", 1)
        .filter("format", "yuv420p")
    )


#: Seconds every MPEG-TS cut input is moved by (``-itsoffset``, with ``setpts`` moving it back). Under
#: ``-copyts`` ffmpeg's CLI (5.1) "corrects the start time" of an MPEG-TS input whose offset equals
#: minus its start time: with no offset, one that starts at exactly 0 (Bento4's mp42hls: audio from
#: PTS 0, video from its first composition offset) has its video moved back to 0 when the other streams
#: are not mapped, so every frame was picked as the one two frames later. An offset of a whole second
#: (a whole number of ticks in every ``1/n`` time base) never equals minus a start time.
TS_INPUT_OFFSET_S = 1


#: For an input whose stream is interlaced (1080i, 576i broadcasts): every frame flagged interlaced
#: becomes one progressive frame, its first field's, at its own timestamp (``send_frame``: one frame out
#: per frame in, so the frame rule holds); a progressive frame passes unchanged. Scaling interlaced
#: frames as they are combs every moving edge with the two fields' moments. Only such inputs get it:
#: ``bwdif`` cannot take a picture size change inside its input, which the graph otherwise keeps
#: (``reinit_filter=0``).
DEINTERLACE = ("bwdif", "send_frame", "auto", "interlaced")


#: HDR transfers (ffprobe's names): PQ (SMPTE ST 2084: HDR10, Dolby Vision's base layer) and HLG
#: (ARIB STD-B67: broadcast and phone HDR). Clips are SDR BT.709, so such frames are tone-mapped.
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
#: Filters the tone mapping needs: ``zscale`` is in ffmpeg builds with zimg (Debian's, the usual static
#: builds); ``tonemap`` in every build.
TONE_MAP_FILTERS = ("zscale", "tonemap")


@dataclass(frozen=True)
class Colour:
    """A video stream's colour as ffprobe names it ("" where the stream does not say)."""

    transfer: str = ""
    primaries: str = ""
    matrix: str = ""

    @property
    def hdr(self) -> bool:
        return self.transfer in HDR_TRANSFERS


def _to_sdr(stream: ffmpeg.nodes.FilterableStream, colour: Colour) -> ffmpeg.nodes.FilterableStream:
    """HDR frames tone-mapped to SDR BT.709: to linear light (its nominal peak 100 cd/m2, SDR's white),
    to BT.709 primaries, highlights above SDR white rolled off by ``mobius`` (linear below; of the
    curves in ``tonemap`` it keeps a picture whose white is BT.2408's 203 cd/m2 closest to its SDR
    original: hable's darkens mid-tones), then BT.709's transfer and matrix, limited range, 4:2:0. The
    stream's own primaries and matrix are named (BT.2020 where it does not say), as zimg needs them all."""
    return (
        stream.filter(
            "zscale",
            tin=colour.transfer,
            pin=colour.primaries or "bt2020",
            min=colour.matrix or "bt2020nc",
            t="linear",
            npl=100,
        )
        .filter("format", "gbrpf32le")
        .filter("zscale", p="bt709")
        .filter("tonemap", tonemap="mobius")
        .filter("zscale", t="bt709", m="bt709", r="tv")
        .filter("format", "yuv420p")  # zimg converts to YUV by BT.709's matrix (swscale's is BT.601's)
    )


@dataclass(frozen=True)
class CutInput:
    """A local file a clip is cut from: its demuxer, and where to seek (an indexed file's keyframe)."""

    path: Path
    fmt: str  # mpegts | mp4 | mov | matroska: never guessed from the content
    seek_s: float | None = None
    interlaced: bool = False  # deinterlaced first (``DEINTERLACE``)
    #: the stream's colour; HDR (``Colour.hdr``) is tone-mapped to SDR unless ``tone_map`` is False
    colour: Colour = Colour()
    tone_map: bool = True


def cut_argv(
    ffmpeg_bin: str,
    inputs: list[CutInput],
    cuts: list[RunCut],
    out: Path,
    *,
    frames: int,
    profile: EncodeProfile,
) -> list[str]:
    """Cut ``frames`` output frames from ``inputs`` by the frame rule (``pipeline.frame_rule``).

    Timestamps are read as they are (``-copyts``): per input, ``settb`` to a
    time base in which every output tick is whole, ``setpts`` so that the
    input's first output frame lands at 0, ``fps=round=up`` (an output tick
    shows the last frame at or before it), a held last frame (``trim`` +
    ``tpad``), each part fitted to the profile, then the parts are joined
    (``concat``). A source whose picture size changes inside a run (no
    discontinuity is needed for that) or between runs is cut the same way: the
    filter graph is never rebuilt on a size change (``reinit_filter=0``: a
    rebuild would restart ``fps``, ``tpad`` and ``trim`` and shift the frames),
    ``scale`` takes each frame as it comes, and the parts reach ``concat``
    already of one size. Each input has its demuxer named and may open local
    files only; ``-xerror`` turns real damage into an error.
    """
    parts = []
    streams = [
        ffmpeg.input(
            str(i.path),
            f=i.fmt,
            protocol_whitelist="file",
            reinit_filter=0,
            **profile.input_kwargs(),
            **({"ss": f"{i.seek_s:.6f}", "noaccurate_seek": None} if i.seek_s is not None else {}),
            **({"itsoffset": TS_INPUT_OFFSET_S} if i.fmt == "mpegts" else {}),
        ).video
        for i in inputs
    ]
    streams = [s.filter(*DEINTERLACE) if i.interlaced else s for s, i in zip(streams, inputs, strict=True)]
    uses = Counter(cut.run for cut in cuts)
    splits = {run: streams[run].split() for run, n in uses.items() if n > 1}  # a run cut in several parts
    taken: Counter[int] = Counter()
    for cut in cuts:
        source = splits[cut.run][taken[cut.run]] if cut.run in splits else streams[cut.run]
        taken[cut.run] += 1
        moved = TS_INPUT_OFFSET_S * cut.tick_den if inputs[cut.run].fmt == "mpegts" else 0
        v = source.filter("settb", f"1/{cut.tick_den}").filter("setpts", f"PTS-{cut.shift + moved}")
        if cut.end_pts is not None:
            v = v.filter("trim", end_pts=cut.end_pts)
        hold_s = cut.count / profile.fps + 1
        v = (
            v.filter("fps", fps=profile.fps, round="up", start_time=0)
            .filter("tpad", stop_mode="clone", stop_duration=f"{hold_s:g}")
            .filter("trim", end_frame=cut.count)
            .filter("setpts", "PTS-STARTPTS")
        )
        source_input = inputs[cut.run]
        if source_input.colour.hdr and source_input.tone_map:
            # the frames kept only, at the clip's size, at the source's bit depth: tone mapping in
            # floating point costs about 30 ms more a 1280x720 frame (bench/hdr_cost.py: a 1080p source
            # into a 720p clip costs 2.4x a plain clip's CPU, 3.8x tone-mapped before the scale)
            parts.append(_pad_to_size(_to_sdr(_scale_to_fit(v, profile), source_input.colour), profile))
        else:
            parts.append(_fit(v, profile))
    joined = parts[0] if len(parts) == 1 else ffmpeg.concat(*parts, v=1, a=0)
    graph = ffmpeg.output(joined, str(out), **profile.output_kwargs(frames))
    return _with_globals(
        ffmpeg_bin,
        ["-xerror", "-copyts", *profile.global_args(), *PROGRESS_ARGS, *graph.compile(cmd=ffmpeg_bin)[1:]],
    )


def seek_cut_argv(
    ffmpeg_bin: str,
    source: str,
    out: Path,
    *,
    offset_s: float,
    window_s: float,
    frames: int,
    profile: EncodeProfile,
) -> list[str]:
    """The plain cut a person would write, ``ffmpeg -ss T -t W -i SOURCE``: the benchmarks' baseline."""
    inp = ffmpeg.input(source, ss=f"{offset_s:.6f}", t=f"{window_s:.6f}")
    graph = ffmpeg.output(_normalise(inp.video, profile, frames), str(out), **profile.output_kwargs(frames))
    return _with_globals(ffmpeg_bin, [*PROGRESS_ARGS, *graph.compile(cmd=ffmpeg_bin)[1:]])


def retime_argv(ffmpeg_bin: str, clip: Path, out: Path, *, frames: int, profile: EncodeProfile) -> list[str]:
    """A finished clip re-encoded to ``frames`` frames: its first frames (a trim) or all of them with the
    last one held (``tpad``), with the same encoder settings as every cut (``pipeline.clip_reuse``)."""
    inp = ffmpeg.input(str(clip), f="mp4", protocol_whitelist="file", **profile.input_kwargs()).video
    hold_s = frames / profile.fps + 1
    v = (
        inp.filter("tpad", stop_mode="clone", stop_duration=f"{hold_s:g}")
        .filter("trim", end_frame=frames)
        .filter("setpts", "PTS-STARTPTS")
    )
    graph = ffmpeg.output(v, str(out), **profile.output_kwargs(frames))
    return _with_globals(
        ffmpeg_bin, ["-xerror", *profile.global_args(), *PROGRESS_ARGS, *graph.compile(cmd=ffmpeg_bin)[1:]]
    )


def video_packets_argv(ffprobe_bin: str, path: Path, fmt: str, *, first_only: bool = False) -> list[str]:
    """ffprobe: the video stream's time base and rate, and its packets' pts, flags and byte positions."""
    argv = [ffprobe_bin, "-v", "error", "-f", fmt, "-protocol_whitelist", "file", "-select_streams", "v:0"]
    if first_only:
        argv += ["-read_intervals", "%+#1"]
    entries = "packet=pts,flags,pos:stream=time_base,r_frame_rate,codec_name,field_order"
    entries += ",color_transfer,color_primaries,color_space"
    return [*argv, "-show_entries", entries, "-of", "json", str(path)]


def decoders_argv(ffmpeg_bin: str) -> list[str]:
    return [ffmpeg_bin, "-hide_banner", "-decoders"]


def filters_argv(ffmpeg_bin: str) -> list[str]:
    return [ffmpeg_bin, "-hide_banner", "-filters"]


def placeholder_argv(ffmpeg_bin: str, out: Path, *, frames: int, profile: EncodeProfile) -> list[str]:
    """A black clip of exactly ``frames`` frames with the same encoder settings as every cut."""
    inp = ffmpeg.input(
        f"color=c=black:s={profile.width}x{profile.height}:r={profile.fps}",
        f="lavfi",
        protocol_whitelist="file",  # a generated picture: it opens nothing; said so all the same
    )
    graph = ffmpeg.output(_normalise(inp.video, profile, frames), str(out), **profile.output_kwargs(frames))
    return _with_globals(ffmpeg_bin, [*PROGRESS_ARGS, *graph.compile(cmd=ffmpeg_bin)[1:]])


#: Demuxers the concat list may use: the list itself, and our own MP4 clips (copied to the inner files).
CONCAT_FORMATS = "concat,mov"


def assemble_argv(
    ffmpeg_bin: str, concat_list: Path, out: Path, *, total_frames: int, fps: int, audio: Path | None
) -> list[str]:
    """Concatenate clips and mux the prepared AAC track, both as stream copies, cut to the video's length.

    Both inputs have their demuxer named and open local files only; the concat list's entries may be
    MP4 clips and nothing else (its whitelists pass to the files it opens).
    """
    duration = f"{total_frames / fps:.6f}"
    argv = [ffmpeg_bin, *GLOBAL_ARGS, "-f", "concat", "-safe", "0", *LOCAL_ONLY]
    argv += ["-format_whitelist", CONCAT_FORMATS, "-i", str(concat_list)]
    if audio is not None:
        argv += ["-f", "mp4", *LOCAL_ONLY, "-i", str(audio)]
    argv += ["-map", "0:v:0"]
    if audio is not None:
        argv += ["-map", "1:a:0", "-c:a", "copy"]
    # The concat demuxer places each clip in microseconds: at 60 fps a frame could land a tick of
    # 90 kHz off its k/fps. Every timestamp goes back to the frame grid (a stream copy still).
    grid = f"round({{0}}*TB*{fps})/(TB*{fps})"
    snap = f"setts=pts={grid.format('PTS')}:dts={grid.format('DTS')}"
    argv += ["-c:v", "copy", "-bsf:v", snap, "-t", duration, "-movflags", "+faststart", "-f", "mp4", str(out)]
    return argv


#: The song's bitrate once it is encoded for the job.
AAC_BITRATE = "192k"
#: Demuxers a song may be read with: single-file audio containers. Never a playlist (hls, dash), a list
#: (concat), an image sequence or anything else that opens other files or URLs.
SONG_DEMUXERS = ("mov", "mp3", "wav", "flac", "ogg", "matroska", "aac", "aiff")
#: Input options that keep a demuxer on the one local file it was given.
LOCAL_ONLY = ["-protocol_whitelist", "file"]


def song_argv(
    ffmpeg_bin: str, source: Path, fmt: str, out: Path, *, length_s: float, lead_samples: int = 0
) -> list[str]:
    """The song's first audio stream (the one ``probe_song_argv`` measured and a copied song's mux maps;
    never ffmpeg's pick among several) from demuxer ``fmt`` as AAC in MP4, after ``lead_samples`` of
    silence (an MP4 track that starts late on its movie timeline), padded with silence or cut to exactly
    ``length_s`` seconds.

    The samples are timed by their count from the first (``asetpts``, rounded: N/SR/TB in floating point
    lands a tick off, AAC frames 1023 and 1025 samples apart): the demuxer's timestamps are not carried
    into the track (ffmpeg's Ogg/Vorbis ones jump by hundreds of samples at block switches, and the AAC
    track's timestamps kept the jumps), nor is its start (ffmpeg moves the first sample to 0: an MP4's
    empty edit was lost; ``lead_samples`` restores it)."""
    if fmt not in SONG_DEMUXERS:
        raise ValueError(f"song demuxer {fmt!r} is not one of {SONG_DEMUXERS}")
    if lead_samples < 0:
        raise ValueError(f"a song cannot start {lead_samples} samples early")
    lead = f",adelay=delays={lead_samples}S:all=1" if lead_samples else ""
    af = f"asetpts=round(N/SR/TB){lead},apad"
    return _with_globals(
        ffmpeg_bin,
        ["-f", fmt, *LOCAL_ONLY, "-i", str(source), "-map", "0:a:0", "-af", af, "-t", f"{length_s:.6f}"]
        + ["-c:a", "aac", "-b:a", AAC_BITRATE, "-f", "mp4", str(out)],
    )


def probe_song_argv(ffprobe_bin: str, media: Path) -> list[str]:
    """ffprobe: the song's demuxer and duration, and its streams' types, codecs, sample rates, start times,
    durations and packet counts (the index's and those read), as JSON. Only
    ``SONG_DEMUXERS`` may read it, and only the local file: a playlist or list fails here ("Format not on
    whitelist")."""
    return [
        ffprobe_bin,
        "-v",
        "error",
        *LOCAL_ONLY,
        "-format_whitelist",
        ",".join(SONG_DEMUXERS),
        "-count_packets",  # demuxed, not decoded: packets an index lists but a cut-short file lacks
        "-show_entries",
        "stream=codec_type,codec_name,sample_rate,start_time,duration,nb_frames,nb_read_packets"
        ":format=format_name,duration",
        "-of",
        "json",
        str(media),
    ]


def concat_list_text(clips: list[Path]) -> str:
    """The concat demuxer's list file; paths are quoted per its rules."""

    def quote(p: Path) -> str:
        return "'" + str(p.resolve()).replace("'", "'\\''") + "'"

    return "ffconcat version 1.0\n" + "".join(f"file {quote(p)}\n" for p in clips)


def frames_from_progress(stdout: bytes) -> int | None:
    """The frame count in ffmpeg's ``-progress`` output (its last ``frame=`` line), None if absent."""
    frames = None
    for line in stdout.decode("ascii", "replace").splitlines():
        if line.startswith("frame="):
            try:
                frames = int(line[6:].strip())
            except ValueError:
                continue
    return frames


def count_frames_argv(ffprobe_bin: str, video: Path, fmt: str = "mp4") -> list[str]:
    """ffprobe: the number of video packets (= frames for our constant-rate H.264 output, demuxer ``fmt``)."""
    return [
        ffprobe_bin,
        "-v",
        "error",
        "-f",
        fmt,
        *LOCAL_ONLY,
        "-select_streams",
        "v:0",
        "-count_packets",
        "-show_entries",
        "stream=nb_read_packets",
        "-of",
        "csv=p=0",
        str(video),
    ]


def poster_argv(ffmpeg_bin: str, video: Path, out: Path, *, at_s: float) -> list[str]:
    """One JPEG frame of the final video at ``at_s`` (the middle): the job's poster.jpg."""
    return [
        ffmpeg_bin,
        *GLOBAL_ARGS,
        "-ss",
        f"{at_s:.3f}",
        "-f",
        "mp4",
        *LOCAL_ONLY,
        "-i",
        str(video),
        "-frames:v",
        "1",
        "-q:v",
        "3",
        "-f",
        "image2",
        "-c:v",
        "mjpeg",
        str(out),
    ]
