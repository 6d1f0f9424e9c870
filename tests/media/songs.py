"""Songs with a timing signal, made by other encoders and muxers than clipline's own ffmpeg AAC path.

Every song is 10 s of silence with three clicks (``CLICKS_S``): a 10 ms burst of a 1 kHz sine that
starts at sine phase 0 on an exact sample (48 kHz), written as 16-bit PCM WAV by ffmpeg's ``aevalsrc``
(lossless). That WAV is then encoded and muxed by GStreamer (its avenc_aac and voaacenc AAC encoders
into its mp4mux, lamemp3enc with xingmux and id3v2mux, vorbisenc into oggmux and webmmux, opusenc into
oggmux and matroskamux, flacenc, wavenc) or by ffmpeg with other options than clipline's (an M4A whose
audio track starts late through an empty edit, ``+faststart``, an MP3 with ID3v2 tags and a cover
picture, AAC in ADTS, 44.1 kHz, an M4A whose edit list plays 5 s of its 10 s of samples). Where a
click lands is what the song's own decoder makes of it (encoder delays a decoder cannot know of stay
in), never the WAV's sample: a test compares the song played with the song in clipline's final.mp4.
Built once per content hash (and set of installed GStreamer elements) under ``.cache/``, under the
``building`` file lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipline.dev.samples import building

from .corpus import GST_ATTEMPTS, GST_INSTALL, GST_TIMEOUT_S, ff

RATE = 48000
DURATION_S = 10
CLICKS_S = (0.5, 2.0, 9.5)
CLICK_S = 0.01
#: The late song's empty edit, and the length the trimmed song's edit list plays.
LATE_S = 0.5
TRIM_S = 5.0


def signal_graph(rate: int = RATE) -> str:
    """lavfi: mono silence with a 1 kHz burst of 0.8 full scale at each of ``CLICKS_S``."""
    bursts = "+".join(f"0.8*sin(2*PI*1000*(t-{at}))*between(t\\,{at}\\,{at + CLICK_S})" for at in CLICKS_S)
    return f"aevalsrc={bursts}:s={rate}:d={DURATION_S}"


@dataclass(frozen=True)
class Song:
    name: str  # the file's name in the built folder
    clicks: int = len(CLICKS_S)  # clicks a player plays (the trimmed song's edit list hides the last)
    elements: tuple[str, ...] = ()  # GStreamer elements it needs; empty: ffmpeg alone


def _wav(folder: Path, rate: int = RATE) -> Path:
    wav = folder / f"signal-{rate}.wav"
    if not wav.exists():
        ff("-f", "lavfi", "-i", signal_graph(rate), "-ac", "2", "-c:a", "pcm_s16le", str(wav))
    return wav


def _gst(*chain: str) -> Callable[[Path, Path], None]:
    """GStreamer from the WAV (its own wavparse) through ``chain`` to a filesink."""

    def make(folder: Path, out: Path) -> None:
        argv = ["gst-launch-1.0", "-q", "filesrc", f"location={_wav(folder)}", "!", "wavparse"]
        argv += ["!", "audioconvert", "!", *" ! ".join(chain).split(), "!", "filesink", f"location={out}"]
        for attempt in range(1, GST_ATTEMPTS + 1):
            try:
                subprocess.run(argv, check=True, timeout=GST_TIMEOUT_S, capture_output=True)
                return
            except subprocess.TimeoutExpired:  # GStreamer 1.22 sometimes never reaches EOS: run it again
                out.unlink(missing_ok=True)
                if attempt == GST_ATTEMPTS:
                    raise

    return make


def _ffmpeg(*args: str, rate: int = RATE) -> Callable[[Path, Path], None]:
    """ffmpeg from the WAV with ``args`` (``{out}``: the song; ``{wav}``: the WAV, when not first)."""

    def make(folder: Path, out: Path) -> None:
        wav = str(_wav(folder, rate))
        ff(*(a.format(out=out, wav=wav, folder=folder) for a in args))

    return make


def _cover(folder: Path, out: Path) -> None:
    """MP3 (libmp3lame, its LAME header giving the encoder delay) with ID3v2.3 tags and a PNG cover: an
    attached-picture "video" stream beside the audio."""
    png = folder / "cover.png"
    ff("-f", "lavfi", "-i", "color=red:s=64x64", "-frames:v", "1", str(png))
    ff(
        "-i",
        str(_wav(folder)),
        "-i",
        str(png),
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        "-id3v2_version",
        "3",
        "-metadata",
        "title=Clicks",
        "-metadata:s:v",
        "title=Album cover",
        "-metadata:s:v",
        "comment=Cover (front)",
        str(out),
    )


def _trimmed(folder: Path, out: Path) -> None:
    """An M4A (ffmpeg AAC, +faststart) whose edit list plays only the first ``TRIM_S`` of its 10 s of
    samples: the container (mvhd) says 10 s, the audio stream 5 s. Its ``elst`` entry is rewritten."""
    ff("-i", str(_wav(folder)), "-c:a", "aac", "-movflags", "+faststart", str(out))
    data = bytearray(out.read_bytes())
    at = data.index(b"elst")
    assert data[at + 4] == 0 and struct.unpack(">I", data[at + 8 : at + 12]) == (1,)  # v0, one entry
    struct.pack_into(">I", data, at + 12, round(TRIM_S * 1000))  # segment_duration, movie timescale 1000
    out.write_bytes(bytes(data))


SONGS: dict[str, tuple[Callable[[Path, Path], None], Song]] = {
    "gst_avenc_aac": (
        _gst("avenc_aac", "aacparse", "mp4mux"),
        Song("gst_avenc_aac.m4a", elements=("wavparse", "avenc_aac", "aacparse", "mp4mux")),
    ),
    "gst_voaacenc": (
        _gst("voaacenc", "aacparse", "mp4mux faststart=true"),
        Song("gst_voaacenc.m4a", elements=("wavparse", "voaacenc", "aacparse", "mp4mux")),
    ),
    "gst_lame": (
        _gst("lamemp3enc target=bitrate bitrate=192", "xingmux", "id3v2mux"),
        Song("gst_lame.mp3", elements=("wavparse", "lamemp3enc", "xingmux", "id3v2mux")),
    ),
    "gst_vorbis": (
        _gst("vorbisenc", "oggmux"),
        Song("gst_vorbis.ogg", elements=("wavparse", "vorbisenc", "oggmux")),
    ),
    "gst_opus": (
        _gst("opusenc", "oggmux"),
        Song("gst_opus.opus", elements=("wavparse", "opusenc", "oggmux")),
    ),
    "gst_opus_mka": (
        _gst("opusenc", "matroskamux"),
        Song("gst_opus.mka", elements=("wavparse", "opusenc", "matroskamux")),
    ),
    "gst_vorbis_webm": (
        _gst("vorbisenc", "webmmux"),
        Song("gst_vorbis.webm", elements=("wavparse", "vorbisenc", "webmmux")),
    ),
    "gst_flac": (_gst("flacenc"), Song("gst_flac.flac", elements=("wavparse", "flacenc"))),
    "gst_wav": (_gst("wavenc"), Song("gst_wav.wav", elements=("wavparse", "wavenc"))),
    # ffmpeg's AAC, its track starting LATE_S into the movie (an empty edit): a player is silent until then
    "ff_late_m4a": (
        _ffmpeg("-itsoffset", str(LATE_S), "-i", "{wav}", "-c:a", "aac", "{out}"),
        Song("ff_late.m4a"),
    ),
    "ff_faststart_m4a": (
        _ffmpeg("-i", "{wav}", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "{out}"),
        Song("ff_faststart.m4a"),
    ),
    "ff_cover_mp3": (_cover, Song("ff_cover.mp3")),
    "ff_adts": (_ffmpeg("-i", "{wav}", "-c:a", "aac", "-f", "adts", "{out}"), Song("ff_adts.aac")),
    "ff_44k_m4a": (_ffmpeg("-i", "{wav}", "-c:a", "aac", "{out}", rate=44100), Song("ff_44k.m4a")),
    "ff_44k_flac": (_ffmpeg("-i", "{wav}", "-c:a", "flac", "{out}", rate=44100), Song("ff_44k.flac")),
    "ff_trimmed_m4a": (_trimmed, Song("ff_trimmed.m4a", clicks=2)),
}
VERSION = 1


def missing(song: Song) -> str | None:
    """Why the song cannot be built here (a GStreamer element is not installed), or None."""
    if not song.elements:
        return None
    if shutil.which("gst-launch-1.0") is None:
        return f"gst-launch-1.0 not installed ({GST_INSTALL})"
    inspect = ["gst-inspect-1.0", "--exists"]
    absent = [e for e in song.elements if subprocess.run([*inspect, e], check=False).returncode]
    return f"{', '.join(absent)} not installed ({GST_INSTALL})" if absent else None


def build(cache: Path) -> Path:
    """Make every buildable song under ``cache/<hash>/`` once; returns that folder."""
    buildable = [name for name, (_, song) in SONGS.items() if missing(song) is None]
    recipe = Path(__file__).read_text() + str(VERSION) + ",".join(buildable)
    base = cache / hashlib.sha256(recipe.encode()).hexdigest()[:12]
    if (base / "complete.json").exists():
        return base
    with building(base):  # another test process may be building it right now: wait, then reuse it
        if not (base / "complete.json").exists():
            tmp = base.parent / f".{base.name}.{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for name in buildable:
                make, song = SONGS[name]
                make(tmp, tmp / song.name)
            (tmp / "complete.json").write_text(json.dumps(sorted(buildable)))
            shutil.rmtree(base, ignore_errors=True)
            os.replace(tmp, base)
    return base
