"""Outside audit E (each test failed on the code before its fix).

checked and found correct (evidence: these pass). Seeded, deterministic mutations.

- parse_playlist under 3000 seeded mutations raises only SourceInvalid, each under 1 s;
- ts_packets / mpegts readers under 2000 bit flips and truncations end cleanly;
- ts_packets.video_packets agrees with ffprobe on a real segment and on mutated ones (or says None);
- fmp4.from_sample's rewritten fragments decode to exactly the frames from the keyframe on (plain,
  B-frames, audio+video, negative CTS);
- audio.probe refuses garbage songs (HTML, playlists with BOM/CRLF/UTF-16, random bytes, truncated
  m4a, a box of 2^62 bytes, an empty file, a concat list) with SourceInvalid;
- one job through running workers with mutated sources ends COMPLETED_WITH_GAPS naming each reason,
  the intact lines frame-exact;
- garbage on render.fallback and render.assemble is dead-lettered once, no worker dies.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import types
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest

from pipeline import audio, ffmpeg_args, fmp4, hls, mpegts, ts_packets
from pipeline.errors import SourceInvalid
from pipeline.probe import Packet
from tests.integration.conftest import Stack, build_request, new_job_id
from tests.integration.faultkit import dead_letters, init_db, submit, wait_final, wait_for
from tests.integration.test_deadletter import consumers

from .test_e2e_mutated import assert_exact_frames

URL = "http://cdn.example/v/index.m3u8"
MEDIA = (
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n"
    '#EXT-X-DEFINE:NAME="tok",VALUE="abc"\n#EXT-X-MAP:URI="init.mp4",BYTERANGE="800@0"\n'
    '#EXT-X-KEY:METHOD=AES-128,URI="k.bin",IV=0x0102030405060708090a0b0c0d0e0f10\n'
    "#EXTINF:2.000,\n#EXT-X-BYTERANGE:1000@800\nseg.m4s?t={$tok}\n#EXT-X-DISCONTINUITY\n"
    "#EXTINF:1.5,\n#EXT-X-BYTERANGE:500\nseg.m4s?t={$tok}\n#EXT-X-GAP\n#EXTINF:2,\ngap.m4s\n#EXT-X-ENDLIST\n"
)
MASTER = (
    '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"\n'
    "low/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720\nhi/index.m3u8\n"
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="a.m3u8"\n'
)
TOKENS = [
    "\x00",
    "\ufeff",
    "\r\n",
    "\r",
    "-1",
    "nan",
    "1e400",
    "9" * 30,
    "@",
    ",",
    '"',
    "=",
    "{$x}",
    "#EXTINF:",
    "#EXT-X-ENDLIST",
    "#EXT-X-BYTERANGE:18446744073709551615@18446744073709551615",
    "file:///etc/passwd",
    "data:,x",
    "javascript:x",
    "http://[::1",
    "http://h:99999/",
    "\t",
    "#EXT-X-KEY:METHOD=SAMPLE-AES",
    '#EXT-X-MAP:URI=""',
    "#EXT-X-MEDIA-SEQUENCE:-5",
    "#EXT-X-STREAM-INF:RESOLUTION=x",
]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(text) + 1)
        if op == 0:
            text = text[:i]
        elif op == 1:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op == 2 and text:
            text = (
                text[:i]
                + chr(rng.randrange(0x110000) if rng.random() < 0.1 else rng.randrange(128))
                + text[i + 1 :]
            )
        elif op == 3:
            lines = text.split("\n")
            j = rng.randrange(len(lines))
            lines.insert(j, lines[rng.randrange(len(lines))])  # duplicate a tag
            text = "\n".join(lines)
        else:
            text = text[:i] + text[i : i + rng.randrange(1, 200)] * rng.randrange(2, 50) + text[i:]
    return text


def test_parse_playlist_fuzz_raises_only_source_invalid() -> None:
    """3000 seeded mutations of a media and a master playlist (truncation, BOM, CRLF, NUL, duplicate
    tags, NaN/negative/huge EXTINF, BYTERANGE overflow, odd schemes): parse_playlist returns or raises
    SourceInvalid, each within 1 s; every URI it returns is absolute http(s)."""
    rng = random.Random(0xE)
    for n in range(3000):
        text = mutate(rng, MEDIA if n % 2 else MASTER)
        started = time.monotonic()
        try:
            out = hls.parse_playlist(text, URL + "?tok=1")
        except SourceInvalid:
            out = None
        assert time.monotonic() - started < 1.0, text[:200]
        if isinstance(out, hls.MediaPlaylist):
            assert all(s.uri.startswith(("http://", "https://")) for s in out.segments)
            assert all(s.duration_s > 0 for s in out.segments)
        elif isinstance(out, hls.MasterPlaylist):
            assert all(v.uri.startswith(("http://", "https://")) for v in out.variants)


def _ts_seed() -> bytes:
    pat_section = bytes([0x00, 0xB0, 0x0D, 0, 1, 0xC1, 0, 0, 0, 1, 0xF0, 0x00]) + b"\0\0\0\0"
    pmt_section = (
        bytes([0x02, 0xB0, 0x12, 0, 1, 0xC1, 0, 0, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00])
        + b"\0" * 4
    )

    def pkt(pid: int, payload: bytes, start: bool, cc: int) -> bytes:
        return (
            bytes([0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF, 0x10 | cc])
            + payload.ljust(184, b"\xff")[:184]
        )

    pes = (
        b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05\x21\x00\x01\x00\x01"
        + b"\x00\x00\x00\x01\x65\x88"
        + b"\x11" * 100
    )
    return (
        pkt(0, b"\0" + pat_section, True, 0)
        + pkt(0x1000, b"\0" + pmt_section, True, 0)
        + pkt(0x100, pes, True, 0)
        + pkt(0x100, b"\x22" * 184, False, 1)
    )


def test_ts_readers_fuzz_end_cleanly() -> None:
    """2000 seeded bit flips/truncations of a small H.264 TS: ts_packets.video_packets returns a list or
    None, mpegts.video_stream_types a tuple, mpegts.check raises only NotTransportStream, mpegts.join
    keeps the length."""
    rng = random.Random(0xE2)
    seed = _ts_seed()
    assert ts_packets.video_packets(seed) is not None
    for _ in range(2000):
        buf = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            buf = buf[: rng.randrange(len(buf))]
        data = bytes(buf)
        out = ts_packets.video_packets(data)
        assert out is None or isinstance(out, list)
        assert isinstance(mpegts.video_stream_types(data), tuple)
        try:
            mpegts.check(data, "seg")
        except mpegts.NotTransportStream:
            continue
        assert len(mpegts.join([data, data])) == 2 * len(data)


def _ffprobe_packets(path: Path) -> list[Packet]:
    argv = ffmpeg_args.video_packets_argv("ffprobe", path, "mpegts")
    data = json.loads(subprocess.run(argv, capture_output=True, timeout=60).stdout or b"{}")
    return [
        Packet(
            int(p["pts"]),
            "K" in p.get("flags", ""),
            int(p["pos"]) if p.get("pos") not in (None, "N/A") else None,
        )
        for p in data.get("packets") or []
        if p.get("pts") not in (None, "N/A")
    ]


def test_ts_packets_agrees_with_ffprobe_or_says_none(samples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On a real segment and 80 seeded mutations of it (header bit flips, adaptation field lengths 0..255,
    adaptation_field_control 00/10, PUSI off, transport error): ts_packets.video_packets is either None or
    exactly ffprobe's list (pts, key flag, byte position): never a guess."""
    seg = (samples.root / "hls" / "v_b" / "seg_00001.ts").read_bytes()
    path = tmp_path / "s.ts"
    path.write_bytes(seg)
    assert ts_packets.video_packets(seg) == _ffprobe_packets(path)
    rng = random.Random(0xE3)
    for _ in range(80):
        buf = bytearray(seg)
        i = rng.randrange(len(buf) // 188) * 188
        kind = rng.randrange(4)
        if kind == 0:
            buf[i + rng.randrange(1, 4)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            buf[i + 3] |= 0x20
            buf[i + 4] = rng.choice([0, 1, 7, 100, 182, 183, 184, 255])
        elif kind == 2:
            buf[i + 3] = (buf[i + 3] & 0xCF) | rng.choice([0x00, 0x20])
        else:
            buf[i + 1] ^= rng.choice([0x40, 0x80])
        mine = ts_packets.video_packets(bytes(buf))
        if mine is not None:
            path.write_bytes(bytes(buf))
            assert mine == _ffprobe_packets(path)


def _frames(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return [ln.split(",")[-1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["-bf", "0"], id="plain"),
        pytest.param(["-bf", "3"], id="bframes"),
        pytest.param(["-bf", "2", "-c:a", "aac"], id="audio"),
        pytest.param(["-bf", "3", "-movflags", "+negative_cts_offsets"], id="negative-cts"),
    ],
)
def test_fmp4_from_sample_decodes_exactly_from_the_keyframe(tmp_path: Path, extra: list[str]) -> None:
    """One 4-second fragment (keyframe every 15 frames): from_sample at each keyframe decodes to exactly
    the original's frames from that keyframe's time on."""
    src = tmp_path / "f.mp4"
    audio_in = ["-f", "lavfi", "-i", "sine=d=4"] if "aac" in extra else []
    movflags = "+empty_moov+default_base_moof" + (
        "+negative_cts_offsets" if "+negative_cts_offsets" in extra else ""
    )
    codec = [a for a in extra if a not in ("-movflags", "+negative_cts_offsets")]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=160x90:r=30:d=4", *audio_in,
         "-c:v", "libx264", "-g", "15", "-sc_threshold", "0", "-pix_fmt", "yuv420p", *codec,
         "-movflags", movflags, "-frag_duration", "4000000", "-min_frag_duration", "4000000", str(src)],
        check=True, timeout=60,
    )  # fmt: skip
    data = src.read_bytes()
    split = next(b.end for b in fmp4.boxes(data) if b.type == b"moov")
    init, frags = data[:split], data[split:]
    probe = json.loads(
        subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=pts,flags",
                "-of",
                "json",
                str(src),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout  # fmt: skip
    )["packets"]
    every = _frames(src)
    shown = sorted(int(p["pts"]) for p in probe)
    for n in [i for i, p in enumerate(probe) if "K" in p["flags"] and i > 0]:
        cut = fmp4.from_sample(init, frags, n)
        assert cut is not None
        out = tmp_path / "cut.mp4"
        out.write_bytes(cut)
        before = sum(1 for p in shown if p < int(probe[n]["pts"]))
        assert _frames(out) == every[before:], n


def test_audio_probe_refuses_garbage_songs(tmp_path: Path) -> None:
    """Garbage served as the song ends in SourceInvalid from audio.probe, quickly."""
    good = tmp_path / "song.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=3", "-c:a", "aac", str(good)], check=True
    )
    cases = {
        "page.html": b"<html><body>404</body></html>",
        "bom.m3u8": b"\xef\xbb\xbf\r\n#EXTM3U\r\n#EXTINF:1,\r\nhttp://127.0.0.1:1/a.ts\r\n",
        "u16.m3u8": "\ufeff#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/a.ts\n".encode("utf-16-le"),
        "padded.m3u8": b"\n" * 3000 + b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/a.ts\n",
        "random.bin": random.Random(5).randbytes(2_000_000),
        "trunc.m4a": good.read_bytes()[:2000],
        "empty": b"",
        "concat.txt": b"ffconcat version 1.0\nfile /etc/passwd\n",
        "dash.mpd": b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>',
        "big64.m4a": good.read_bytes()[:32] + b"\x00\x00\x00\x01mdat" + (2**62).to_bytes(8, "big"),
    }
    ctx = types.SimpleNamespace(ffprobe="ffprobe")
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        started = time.monotonic()
        with pytest.raises(SourceInvalid):
            audio.probe(ctx, path, name)  # type: ignore[arg-type]
        assert time.monotonic() - started < 10, name
    assert audio.probe(ctx, good, "song").codec == "aac"  # type: ignore[arg-type]


# -- end to end --------------------------------------------------------------------------------

NAMES = ("v_ae_trunc", "v_ae_html", "v_ae_nan", "v_ae_file")


@pytest.fixture
def _remove_copies(samples):  # type: ignore[no-untyped-def]
    yield
    for name in NAMES:
        shutil.rmtree(samples.root / "hls" / name, ignore_errors=True)


def copy_of(stack: Stack, source: str, name: str) -> Path:
    dst = stack.samples.root / "hls" / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(stack.samples.root / "hls" / source, dst)
    return dst


@pytest.mark.integration
@pytest.mark.usefixtures("_remove_copies")
def test_a_job_with_mutated_sources_ends_with_gaps_naming_each_reason(stack: Stack) -> None:

    trunc = copy_of(stack, "v_b", "v_ae_trunc")
    seg = trunc / "seg_00002.ts"
    seg.write_bytes(seg.read_bytes()[:-100])  # not whole packets
    html = copy_of(stack, "v_b", "v_ae_html")
    (html / "seg_00002.ts").write_bytes(
        b"<html><body>503 Service Temporarily Unavailable</body></html>\n" * 20
    )
    nan = copy_of(stack, "v_b", "v_ae_nan")
    pl = nan / "index.m3u8"
    pl.write_text(
        pl.read_text()
        .replace("#EXTINF:2.000000,", "#EXTINF:nan,", 1)
        .replace("#EXTINF:2.0,", "#EXTINF:nan,", 1)
    )
    bad = copy_of(stack, "v_b", "v_ae_file")
    pl = bad / "index.m3u8"
    lines = pl.read_text().splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.endswith(".ts"))
    lines[first] = "file:///etc/passwd"
    pl.write_text("\n".join(lines) + "\n")
    assert "nan" in (nan / "index.m3u8").read_text()

    job_id = new_job_id("aeok")
    picks = [
        ("v_a", 1000, 2000, True),
        ("v_ae_trunc", 4200, 5200, True),
        ("v_a", 3000, 4000, True),
        ("v_ae_html", 4200, 5200, True),
        ("v_b", 1000, 2000, True),
        ("v_ae_nan", 4200, 5200, True),
        ("v_ae_file", 4200, 5200, True),
        ("v_a", 6000, 7000, True),
    ]
    request = build_request(job_id, stack.cdn, picks, line_ms=lambda i: 1000, audio=False)
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    started = time.monotonic()
    submit(stack, request)
    result = wait_final(stack, job_id, timeout=150)
    assert time.monotonic() - started < 150
    assert result["status"] == "COMPLETED_WITH_GAPS", result
    report = json.loads(Path(result["report_path"]).read_text())
    assert_exact_frames(request, result, report, [0, 2, 4, 7])
    reasons = {i: report["slots"][i]["reason"] for i in (1, 3, 5, 6)}
    assert "not whole 188-byte packets" in reasons[1], reasons
    assert "segment 2 of" in reasons[3] and "v_ae_html" in reasons[3], reasons
    assert "#EXTINF" in reasons[5], reasons
    assert "only http(s) is read" in reasons[6], reasons
    assert all(r.startswith("SourceInvalid") for r in reasons.values()), reasons


def message(queue: str, actor: str, args: list[Any]) -> bytes:
    return json.dumps(
        {
            "queue_name": queue,
            "actor_name": actor,
            "args": args,
            "kwargs": {},
            "options": {},
            "message_id": str(uuid.uuid4()),
            "message_timestamp": int(time.time() * 1000),
        }
    ).encode()


@pytest.mark.integration
def test_garbage_on_fallback_and_assemble_queues_is_dead_lettered_once(stack: Stack) -> None:
    url = stack.env["CLIPLINE_BROKER_URL"]
    init_db(stack)
    stack.start_workers("--stage", "all", "--concurrency", "2")
    for q in ("render.fallback", "render.assemble"):
        wait_for(f"a {q} consumer", lambda q=q: consumers(url, q) > 0, timeout=60, every=0.5)
    before = dead_letters(url)
    bad = {
        "render.fallback": [
            b"\x1f\x8b\x08\x00garbage",
            message("render.fallback", "fallback_clip", [new_job_id("nosuch"), 0, "why", None]),
            message("render.fallback", "fallback_clip", [["list"], {"d": 1}, 3]),
            message("render.fallback", "fallback_clip", []),
            message("render.fallback", "fallback_clip", [new_job_id("nosuch"), 0, "x" * 2_000_000]),
        ],
        "render.assemble": [
            b'{"queue_name": "render.assemble"',
            message("render.assemble", "assemble_render", [new_job_id("nosuch"), None]),
            message("render.assemble", "assemble_render", [{"job_id": "x"}]),
            message("render.assemble", "assemble_render", ["../../etc/passwd"]),
            message("render.assemble", "assemble_render", [12345, 6789, "extra"]),
        ],
    }
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for queue, bodies in bad.items():
            for body in bodies:
                ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()

    def landed() -> bool:
        now = dead_letters(url)
        return all(now[f"{q}.XQ"] - before[f"{q}.XQ"] >= len(b) for q, b in bad.items())

    wait_for("the garbage in the XQs", landed, timeout=60, every=0.5)
    time.sleep(2)  # a retried message would land a second time
    now = dead_letters(url)
    assert {q: now[f"{q}.XQ"] - before[f"{q}.XQ"] for q in bad} == {q: len(b) for q, b in bad.items()}
    assert all(p.poll() is None for p in stack.procs)
