"""ffmpeg argv builders: exact command lines, no ffmpeg needed."""

from __future__ import annotations

from pathlib import Path

from pipeline.ffmpeg_args import (
    GLOBAL_ARGS,
    EncodeProfile,
    assemble_argv,
    concat_list_text,
    count_frames_argv,
    cut_argv,
    frames_from_progress,
    placeholder_argv,
    song_argv,
)

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
NORMALISE = (
    "fps=fps=30[s{a}];[s{a}]scale=1280:720:force_original_aspect_ratio=decrease[s{b}];"
    "[s{b}]pad=1280:720:(ow-iw)/2:(oh-ih)/2:color=black[s{c}];[s{c}]setsar=1[s{d}];"
    "[s{d}]format=yuv420p[s{e}];[s{e}]tpad=stop_duration=4.2:stop_mode=clone[s{f}]"
)


def test_hls_cut_decodes_from_the_segment_start_and_trims() -> None:
    argv = cut_argv(
        "/usr/bin/ffmpeg",
        [Path("/w/a.ts"), Path("/w/b.ts")],
        Path("/w/o.mp4"),
        offset_s=1.5,
        window_s=3.2,
        frames=96,
        profile=PROFILE,
    )
    chain = "[0:v]trim=start=1.500000[s0];[s0]setpts=PTS-STARTPTS[s1];[s1]" + NORMALISE.format(
        a=2, b=3, c=4, d=5, e=6, f=7
    )
    assert argv == [
        "/usr/bin/ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-xerror",
        "-progress",
        "pipe:1",
        "-nostats",
        "-protocol_whitelist",
        "file,concat",
        "-t",
        "4.700000",
        "-i",
        "concat:/w/a.ts|/w/b.ts",
        "-filter_complex",
        chain,
        *[x.replace("[s6]", "[s7]") for x in ENCODE],
        "/w/o.mp4",
    ]


def test_local_cut_seeks_through_the_index() -> None:
    argv = cut_argv(
        "ffmpeg",
        [Path("/m/v.mp4")],
        Path("/w/o.mp4"),
        offset_s=61.3,
        window_s=3.2,
        frames=96,
        profile=PROFILE,
        indexed=True,
    )
    i = argv.index("-i")
    assert argv[i - 6 : i + 2] == [
        "-protocol_whitelist",
        "file,concat",
        "-ss",
        "61.300000",
        "-t",
        "3.200000",
        "-i",
        "/m/v.mp4",
    ]
    assert "trim" not in " ".join(argv)


def test_every_clip_kind_uses_identical_encoder_settings() -> None:
    cut = cut_argv(
        "ffmpeg", [Path("a.ts")], Path("o.mp4"), offset_s=0, window_s=1, frames=96, profile=PROFILE
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
    assert ["-f", "concat", "-safe", "0", "-i", "/w/list.txt", "-i", "/w/song"] == argv[6:14]
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
    argv = song_argv("ffmpeg", Path("/w/audio/source"), Path("/w/audio/.track.m4a.tmp"), length_s=12.5)
    assert argv == [
        "ffmpeg",
        *GLOBAL_ARGS,
        "-i",
        "/w/audio/source",
        "-vn",
        "-af",
        "apad",
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
