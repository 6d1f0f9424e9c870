"""The song is probed by format first, by the real ffprobe: only a single-file audio container reading the
local file. A playlist, a concat list, a DASH manifest or a file with no audio is refused (SourceInvalid)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import audio
from pipeline.context import Context
from pipeline.errors import SourceInvalid
from tests.stubs import stub_context

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg")


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return stub_context(tmp_path)


def make(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True, timeout=60)
    return out


def test_an_audio_file_is_read_with_its_own_demuxer(ctx: Context, tmp_path: Path) -> None:
    mp3 = make(tmp_path, "song.mp3", "-f", "lavfi", "-i", "sine=d=0.5")
    m4a = make(tmp_path, "song", "-f", "lavfi", "-i", "sine=d=0.5", "-c:a", "aac", "-f", "mp4")
    assert audio.probe(ctx, mp3, "'s.mp3'").fmt == "mp3"
    song = audio.probe(ctx, m4a, "'s'")  # a download has no suffix: the format is read, not guessed
    assert (song.fmt, song.codec) == ("mov", "aac") and song.duration_s > 0.4


def test_a_playlist_is_refused_even_when_it_does_not_look_like_one(ctx: Context, tmp_path: Path) -> None:
    make(tmp_path, "a.mp3", "-f", "lavfi", "-i", "sine=d=0.5")
    body = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.mp3\n#EXT-X-ENDLIST\n"
    plain = tmp_path / "song.m3u8"
    plain.write_text(body)
    with pytest.raises(SourceInvalid, match="HLS playlist"):
        audio.probe(ctx, plain, "'song.m3u8'")
    # Hidden behind leading junk the sniffing does not see, ffprobe's format whitelist still refuses it
    hidden = tmp_path / "song.mp3"
    hidden.write_text("\n" * 2000 + body)
    with pytest.raises(SourceInvalid, match="not an audio file"):
        audio.probe(ctx, hidden, "'song.mp3'")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("ffconcat version 1.0\nfile '/etc/passwd'\n", "concat list"),
        ('<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>\n', "DASH manifest"),
    ],
)
def test_lists_and_manifests_are_refused(ctx: Context, tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "song"
    path.write_text(text)
    with pytest.raises(SourceInvalid, match=what):
        audio.probe(ctx, path, "'song'")


def test_a_video_without_sound_is_refused(ctx: Context, tmp_path: Path) -> None:
    video = make(tmp_path, "clip.mp4", "-f", "lavfi", "-i", "color=s=32x32:d=0.5", "-c:v", "libx264")
    with pytest.raises(SourceInvalid, match="no audio stream"):
        audio.probe(ctx, video, "'clip.mp4'")


def test_the_length_is_the_audio_streams_not_the_containers(ctx: Context, tmp_path: Path) -> None:
    """1 s of AAC beside a 10 s video track: the song lasts 1 s (the container says 10 s)."""
    lavfi = ["-f", "lavfi", "-i", "sine=d=1", "-f", "lavfi", "-i", "color=black:s=64x64:d=10:r=5"]
    m4a = make(tmp_path, "song.m4a", *lavfi, "-c:a", "aac", "-c:v", "libx264")
    song = audio.probe(ctx, m4a, "'song.m4a'")
    assert (song.fmt, song.codec) == ("mov", "aac") and 0.9 < song.duration_s < 1.1, song


def test_a_stream_without_a_duration_falls_back_to_the_containers(ctx: Context, tmp_path: Path) -> None:
    """Matroska keeps no per-stream duration: the container's is the song's."""
    mka = make(tmp_path, "song.mka", "-f", "lavfi", "-i", "sine=d=2", "-c:a", "flac")
    song = audio.probe(ctx, mka, "'song.mka'")
    assert song.fmt == "matroska" and 1.9 < song.duration_s < 2.1, song
