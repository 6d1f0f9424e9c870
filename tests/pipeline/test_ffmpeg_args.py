"""ffmpeg argv builders: exact command lines, no ffmpeg needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.ffmpeg_args import (
    GLOBAL_ARGS,
    Colour,
    CutInput,
    EncodeProfile,
    assemble_argv,
    concat_list_text,
    count_frames_argv,
    cut_argv,
    frames_from_progress,
    placeholder_argv,
    retime_argv,
    song_argv,
)
from pipeline.frame_rule import RunCut
from pipeline.models import OutputProfile

PROFILE = EncodeProfile(1280, 720, 30, "veryfast", 20)
ENCODE = [
    "-map",
    "[s6]",
    "-f",
    "mp4",
    "-an",
    "-c:v",
    "libx264",
    "-crf",
    "20",
    "-dn",
    "-frames:v",
    "96",
    "-g",
    "60",
    "-map_metadata",
    "-1",
    "-pix_fmt",
    "yuv420p",
    "-preset",
    "veryfast",
    "-profile:v",
    "high",
    "-r",
    "30",
    "-sn",
    "-video_track_timescale",
    "90000",
]


def test_cut_names_each_demuxer_keeps_timestamps_and_applies_the_frame_rule_values() -> None:
    inputs = [CutInput(Path("/w/run0.ts"), "mpegts"), CutInput(Path("/w/run1.mp4"), "mp4")]
    cuts = [RunCut(0, 0, 40, 2700000, 12033000, None), RunCut(1, 40, 56, 2700000, 99, 30 * 90000 + 1)]
    argv = cut_argv("ffmpeg", inputs, cuts, Path("/w/o.mp4"), frames=96, profile=PROFILE)
    assert argv[6:11] == ["-xerror", "-copyts", "-progress", "pipe:1", "-nostats"]
    joined = " ".join(argv)
    # every input: its demuxer named, local files only (ffmpeg never follows what it opens)
    # a picture size change never rebuilds the filter graph (that would restart fps, tpad and trim)
    # an MPEG-TS input moved by a second (never "start time corrected" by ffmpeg), and moved back
    assert "-f mpegts -itsoffset 1 -protocol_whitelist file -reinit_filter 0 -i /w/run0.ts" in joined
    assert "-f mp4 -protocol_whitelist file -reinit_filter 0 -i /w/run1.mp4" in joined
    graph = argv[argv.index("-filter_complex") + 1]
    assert "settb=1/2700000" in graph and "setpts=PTS-14733000" in graph and "setpts=PTS-99" in graph
    assert graph.count("fps=fps=30:round=up:start_time=0") == 2
    assert "trim=end_pts=2700001" in graph and "trim=end_frame=40" in graph and "trim=end_frame=56" in graph
    assert "concat=a=0:n=2:v=1" in graph
    # each part is fitted to the profile before the join, which takes parts of one size only
    assert graph.count("scale=") == 2 and graph.index("scale=") < graph.index("concat=")


@pytest.mark.parametrize(
    ("colour", "zscale_in"),
    [
        (
            Colour("smpte2084", "bt2020", "bt2020c"),
            "zscale=min=bt2020c:npl=100:pin=bt2020:t=linear:tin=smpte2084",
        ),
        (Colour("arib-std-b67"), "zscale=min=bt2020nc:npl=100:pin=bt2020:t=linear:tin=arib-std-b67"),
    ],
)
def test_hdr_frames_kept_are_tone_mapped_to_bt709_before_the_fit_and_sdr_ones_are_not(
    colour: Colour, zscale_in: str
) -> None:
    cuts = [RunCut(0, 0, 40, 2700000, 0, None), RunCut(1, 40, 56, 2700000, 0, None)]
    inputs = [CutInput(Path("/w/run0.mp4"), "mp4", colour=colour), CutInput(Path("/w/run1.mp4"), "mp4")]
    argv = cut_argv("ffmpeg", inputs, cuts, Path("/w/o.mp4"), frames=56, profile=PROFILE)
    graph = re.sub(r"\[s\d+\];\[s\d+\]", ",", argv[argv.index("-filter_complex") + 1])  # one chain a run
    # the HDR run only: from its own transfer (BT.2020 where the stream does not say) to linear light,
    # BT.709 primaries, mobius, BT.709 transfer and matrix in YUV; after the frames are picked and the
    # picture is scaled to the clip's size (fewer pixels in floating point), before the padding
    chain = (
        f"{zscale_in},format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=mobius,"
        "zscale=m=bt709:r=tv:t=bt709,format=yuv420p"
    )
    assert graph.count(chain) == 1 and graph.count("zscale=") == 3
    fitted = "scale=min(1280\\,round(720*iw*sar/ih)):min(720\\,round(1280*ih/(iw*sar)))"
    assert f"trim=end_frame=40,setpts=PTS-STARTPTS,{fitted},{chain},pad=1280:720" in graph
    # a stream that does not say, or says SDR, is not touched; one cut as it is says so
    for colour_as_is in (Colour(), Colour("bt709", "bt709", "bt709"), None):
        first = (
            CutInput(Path("/w/run0.mp4"), "mp4", colour=colour, tone_map=False)
            if colour_as_is is None
            else CutInput(Path("/w/run0.mp4"), "mp4", colour=colour_as_is)
        )
        argv = cut_argv("ffmpeg", [first, inputs[1]], cuts, Path("/w/o.mp4"), frames=56, profile=PROFILE)
        assert "zscale" not in " ".join(argv) and "tonemap" not in " ".join(argv)


def test_local_cut_seeks_to_its_keyframe_without_dropping_frames() -> None:
    argv = cut_argv(
        "ffmpeg",
        [CutInput(Path("/m/v.mp4"), "mp4", 61.3)],
        [RunCut(0, 0, 96, 2700000, 5, None)],
        Path("/w/o.mp4"),
        frames=96,
        profile=PROFILE,
    )
    i = argv.index("-i")
    assert argv[i - 9 : i + 2] == [
        "-f",
        "mp4",
        "-noaccurate_seek",
        "-protocol_whitelist",
        "file",
        "-reinit_filter",
        "0",
        "-ss",
        "61.300000",
        "-i",
        "/m/v.mp4",
    ]


def test_every_clip_kind_uses_identical_encoder_settings() -> None:
    cut = cut_argv(
        "ffmpeg",
        [CutInput(Path("a.ts"), "mpegts")],
        [RunCut(0, 0, 96, 2700000, 0, None)],
        Path("o.mp4"),
        frames=96,
        profile=PROFILE,
    )
    black = placeholder_argv("ffmpeg", Path("o.mp4"), frames=96, profile=PROFILE)
    tail = lambda argv: argv[argv.index("-f", argv.index("-map")) :]  # noqa: E731
    assert tail(cut) == tail(black)
    assert black[black.index("-i") + 1] == "color=c=black:s=1280x720:r=30"
    assert "-nostdin" in cut and "-nostdin" in black


def test_assembly_is_a_stream_copy_with_the_song_cut_to_length() -> None:
    argv = assemble_argv(
        "ffmpeg", Path("/w/list.txt"), Path("/o/final.mp4"), total_frames=5400, fps=30, audio=Path("/w/song")
    )
    assert argv[argv.index("-c:v") + 1] == "copy"
    assert argv[argv.index("-t") + 1] == "180.000000"
    assert argv[argv.index("-c:a") + 1] == "copy"  # the track was prepared as AAC during planning
    local = ["-protocol_whitelist", "file"]
    assert argv[6:16] == [
        "-f",
        "concat",
        "-safe",
        "0",
        *local,
        "-format_whitelist",
        "concat,mov",
        "-i",
        "/w/list.txt",
    ]
    assert argv[16:22] == ["-f", "mp4", *local, "-i", "/w/song"]
    silent = assemble_argv("ffmpeg", Path("l"), Path("o"), total_frames=30, fps=30, audio=None)
    assert "-c:a" not in silent and "1:a:0" not in silent


def test_concat_list_quotes_paths(tmp_path: Path) -> None:
    text = concat_list_text([tmp_path / "a.mp4", tmp_path / "it's.mp4"])
    assert text.splitlines()[0] == "ffconcat version 1.0"
    assert text.splitlines()[2] == f"file '{tmp_path}/it'\\''s.mp4'"


def test_frame_count_probe() -> None:
    assert count_frames_argv("ffprobe", Path("x.mp4"))[-1] == "x.mp4"
    assert "-count_packets" in count_frames_argv("ffprobe", Path("x.mp4"))


def test_frame_count_from_progress_output() -> None:
    out = b"frame=10\nfps=0.0\nprogress=continue\nframe=96\nprogress=end\n"
    assert frames_from_progress(out) == 96
    assert frames_from_progress(b"") is None


def test_the_song_is_encoded_once_padded_or_cut_to_the_video_length() -> None:
    argv = song_argv("ffmpeg", Path("/w/audio/source"), "mp3", Path("/w/audio/.track.m4a.tmp"), length_s=12.5)
    assert argv == [
        "ffmpeg",
        *GLOBAL_ARGS,
        "-f",
        "mp3",
        "-protocol_whitelist",
        "file",
        "-i",
        "/w/audio/source",
        "-map",
        "0:a:0",
        "-af",
        "asetpts=round(N/SR/TB),apad",  # timed by the samples' count (was: the demuxer's timestamps)
        "-t",
        "12.500000",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        "-f",
        "mp4",
        "/w/audio/.track.m4a.tmp",
    ]


def test_a_song_that_starts_late_on_its_movie_timeline_keeps_its_lead_as_silence() -> None:
    argv = song_argv("ffmpeg", Path("/w/s.m4a"), "mov", Path("/w/t.m4a"), length_s=9.9, lead_samples=22944)
    assert argv[argv.index("-af") + 1] == "asetpts=round(N/SR/TB),adelay=delays=22944S:all=1,apad"
    with pytest.raises(ValueError):
        song_argv("ffmpeg", Path("/w/s.m4a"), "mov", Path("/w/t.m4a"), length_s=9.9, lead_samples=-1)


def test_a_draft_encodes_a_quarter_of_the_pixels_with_the_fastest_preset_at_the_same_fps() -> None:
    final = EncodeProfile.for_output(OutputProfile(width=1280, height=720, fps=30), "veryfast", 20)
    draft = EncodeProfile.for_output(
        OutputProfile(width=1280, height=720, fps=30, quality="draft"), "veryfast", 20
    )
    assert final == EncodeProfile(1280, 720, 30, "veryfast", 20)
    assert draft == EncodeProfile(640, 360, 30, "ultrafast", 28, scaler="area")
    # a draft averages each 2x2 block of the source; a final render scales as ffmpeg does by default
    one = [CutInput(Path("/w/run0.ts"), "mpegts")]
    cuts = [RunCut(0, 0, 42, 2700000, 0, None)]

    def graph(profile: EncodeProfile) -> str:
        argv = cut_argv("ffmpeg", one, cuts, Path("/w/o.mp4"), frames=42, profile=profile)
        return argv[argv.index("-filter_complex") + 1]

    assert re.search(r"scale=min\(640\\,[^\[]*:flags=area\[", graph(draft))
    assert "flags=" not in graph(final)
    assert draft.width * draft.height * 4 == final.width * final.height
    # the frame count written is the slot's, draft or not
    assert draft.output_kwargs(42)["frames:v"] == final.output_kwargs(42)["frames:v"] == 42
    # odd halves are rounded down to even (yuv420p needs even sizes)
    odd = EncodeProfile.for_output(OutputProfile(width=1078, height=202, fps=25, quality="draft"), "slow", 18)
    assert (odd.width, odd.height) == (538, 100)


def test_x264_threads_are_the_cores_share_of_the_clips_encoding_at_once() -> None:
    from pipeline.ffmpeg_args import encoder_threads

    assert encoder_threads(2, 4) == 1  # more clips than cores: one thread each, never 0
    assert encoder_threads(16, 4) == 4
    assert encoder_threads(8, 0) == 8
    profile = EncodeProfile(640, 360, 30, threads=1)
    black = placeholder_argv("ffmpeg", Path("o.mp4"), frames=30, profile=profile)
    assert black[black.index("-threads") + 1] == "1"
    assert "-threads" not in placeholder_argv("ffmpeg", Path("o.mp4"), frames=30, profile=PROFILE)


def test_a_clips_decoder_and_filters_take_the_same_share_of_the_cores_as_its_encoder() -> None:
    # Given clips encoding at once with one thread each (more clips than cores)
    profile = EncodeProfile(640, 360, 30, threads=1)
    one = [CutInput(Path("/w/run0.ts"), "mpegts"), CutInput(Path("/w/run1.ts"), "mpegts")]
    cuts = [RunCut(0, 0, 20, 2700000, 0, None), RunCut(1, 20, 22, 2700000, 0, None)]
    for argv in (
        cut_argv("ffmpeg", one, cuts, Path("/w/o.mp4"), frames=42, profile=profile),
        retime_argv("ffmpeg", Path("/w/c.mp4"), Path("/w/o.mp4"), frames=42, profile=profile),
    ):
        inputs = [i for i, a in enumerate(argv) if a == "-i"]
        # then every input's decoder is told 1 thread (the option just before its -i), the filter graph
        # too (before the first input), and x264 after the last input
        for at in inputs:
            opts = argv[max((j for j in inputs if j < at), default=0) : at]
            assert opts[opts.index("-threads") + 1] == "1", argv
        graph_threads = argv.index("-filter_complex_threads")
        assert argv[graph_threads + 1] == "1" and graph_threads < inputs[0]
        assert argv[argv.index("-threads", inputs[-1]) + 1] == "1"
    # and where ffmpeg picks (threads 0), nothing is said
    free = cut_argv("ffmpeg", one, cuts, Path("/w/o.mp4"), frames=42, profile=PROFILE)
    assert "-threads" not in free and "-filter_complex_threads" not in free
