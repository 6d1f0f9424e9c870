"""Outside audit E (each test failed on the code before its fix).

hostile and broken bytes fed to the readers of outside data.

Every reader of bytes or text from outside (the CDN, the video API) must end cleanly: only clipline's own
error classes (``pipeline.errors``) escape, or the documented "don't know" answer (None / ``Unsupported``),
never a bare IndexError/struct.error/MemoryError, and never a hang. Seeded, deterministic inputs only.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline import fmp4, mpegts, parameter_sets
from pipeline.errors import ClipLineError
from pipeline.hls_inputs import HlsInputs
from pipeline.probe import Packet, VideoProbe

ROOT = Path(__file__).resolve().parents[2]
URL = "http://cdn.example/v/index.m3u8"


def run_bounded(code: str, timeout_s: float) -> subprocess.CompletedProcess[str] | None:
    """Run ``code`` in a fresh interpreter (memory capped at 2 GiB); None when it ran past ``timeout_s``."""
    prelude = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))\n"
    try:
        return subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return None


def box(typ: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def full(typ: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(typ, struct.pack(">I", (version << 24) | flags) + payload)


def init_section(track_id: int = 1) -> bytes:
    tkhd = full(b"tkhd", 0, 3, struct.pack(">IIII", 0, 0, track_id, 0) + b"\0" * 64)
    hdlr = full(b"hdlr", 0, 0, b"\0\0\0\0vide" + b"\0" * 13)
    return box(b"ftyp", b"isom\0\0\0\0isom") + box(b"moov", box(b"trak", tkhd + box(b"mdia", hdlr)))


def fragment(count: int, *, sizes: bool = True, track_id: int = 1) -> bytes:
    """One moof + mdat: ``count`` video samples (1000 ticks, 10 bytes each)."""
    tfhd = full(b"tfhd", 0, 0x020000 | 0x08 | 0x10, struct.pack(">III", track_id, 1000, 10))
    tfdt = full(b"tfdt", 1, 0, struct.pack(">Q", 0))
    flags = 0x001 | (0x200 if sizes else 0)
    entries = b"".join(struct.pack(">I", 10) for _ in range(count)) if sizes else b""
    trun = full(b"trun", 0, flags, struct.pack(">Ii", count, 0) + entries)
    moof = box(b"moof", box(b"traf", tfhd + tfdt + trun))
    return moof + box(b"mdat", b"\0" * (10 * min(count, 1000)))


def probe_of(n: int) -> VideoProbe:
    return VideoProbe(
        Fraction(1, 1000), None, "h264", tuple(Packet(i * 1000, i % 2 == 0, None) for i in range(n)), 0
    )


# -- fMP4 ------------------------------------------------------------------------------------------


def test_fmp4_boxes_truncated_64bit_size_header_is_unsupported() -> None:
    """``fmp4.boxes`` promises Unsupported for "a size that does not fit"; a box with size 1 (64-bit size
    follows) cut off after its 8-byte header (a truncated segment) raises ``struct.error`` instead.
    Right: Unsupported (the caller keeps the whole run)."""
    data = box(b"ftyp", b"isom") + b"\x00\x00\x00\x01mdat"  # 64-bit size announced, not there
    with pytest.raises(fmp4.Unsupported):
        fmp4.boxes(data)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b"\x00\x00\x00\x01mdat\x00\x00", id="trailing-64bit-box-header-cut-short"),
        pytest.param(b"\x00\x00\x00\x01mdat", id="trailing-size1-box-no-largesize"),
    ],
)
def test_fmp4_from_sample_in_hls_inputs_lets_no_struct_error_escape(tmp_path: Path, tail: bytes) -> None:
    """A fMP4 run (init + fragments, as the CDN served them) with a few trailing bytes that begin a box
    with a 64-bit size: ``HlsInputs._fmp4_from_sample`` catches only Unsupported/StopIteration, and
    ``fmp4.boxes`` raises ``struct.error``, so the clip ends in fallback with an internal
    "error: unpack_from requires a buffer..." (logged as clip.internal_error).
    Right: None (decode the whole run) or SourceInvalid naming the damaged segment.
    Cause: pipeline/fmp4.py:boxes (struct.unpack_from without a length check) and
    pipeline/hls_inputs.py:HlsInputs._fmp4_from_sample (catches only fmp4.Unsupported)."""
    path = tmp_path / "run0.mp4"
    path.write_bytes(init_section() + fragment(4) + tail)
    try:
        out = HlsInputs._fmp4_from_sample(path, probe_of(4), 2)
    except ClipLineError:
        return
    assert out is None or out.exists()


def test_fmp4_from_sample_short_tkhd_is_unsupported(tmp_path: Path) -> None:
    """An init section whose video ``tkhd`` box is empty (size 8): ``fmp4.video_track_id`` reads
    ``body[0]`` and raises IndexError, which ``HlsInputs._fmp4_from_sample`` does not catch.
    Right: Unsupported -> None (or SourceInvalid). Cause: pipeline/fmp4.py:video_track_id."""
    hdlr = full(b"hdlr", 0, 0, b"\0\0\0\0vide" + b"\0" * 13)
    init = box(b"ftyp", b"isom") + box(b"moov", box(b"trak", box(b"tkhd", b"") + box(b"mdia", hdlr)))
    path = tmp_path / "run0.mp4"
    path.write_bytes(init + fragment(4))
    try:
        out = HlsInputs._fmp4_from_sample(path, probe_of(4), 2)
    except ClipLineError:
        return
    assert out is None


def test_fmp4_sample_counts_of_an_empty_trun_are_unsupported() -> None:
    """A ``trun`` box of size 8 (no body) at the end of the fragments: ``fmp4.video_sample_counts`` reads
    its sample count past the box (past the buffer) and raises ``struct.error``; inside a moof followed
    by other boxes it silently reads the next box's bytes as the count. Right: Unsupported.
    Cause: pipeline/fmp4.py:video_sample_counts (no check that the trun body holds 8 bytes)."""
    tfhd = full(b"tfhd", 0, 0x020000, struct.pack(">I", 1))
    data = box(b"moof", box(b"traf", tfhd + box(b"trun", b"")))
    with pytest.raises(fmp4.Unsupported):
        fmp4.video_sample_counts(data, 1)


def test_fmp4_from_sample_huge_trun_sample_count_is_bounded() -> None:
    """A ``trun`` announcing 2^32-1 samples with no per-sample fields (sizes and durations from the
    tfhd defaults) passes the "trun shorter than its sample count" check (0 bytes per entry) and
    ``_Trun.parse`` then builds a list of 4 billion entries: minutes of CPU and tens of GB (MemoryError
    under a 2 GiB cap, which ``from_sample`` does not catch either). Right: refuse a count the fragment's
    mdat cannot hold (Unsupported -> None) in bounded time and memory.
    Cause: pipeline/fmp4.py:_Trun.parse (count not bounded), reached from fmp4.from_sample."""
    code = """
        import struct, time
        from pipeline import fmp4
        def box(t, p): return struct.pack('>I4s', 8 + len(p), t) + p
        def full(t, v, f, p): return box(t, struct.pack('>I', (v << 24) | f) + p)
        tkhd = full(b'tkhd', 0, 3, struct.pack('>IIII', 0, 0, 1, 0) + bytes(64))
        hdlr = full(b'hdlr', 0, 0, b'\\0\\0\\0\\0vide' + bytes(13))
        init = box(b'moov', box(b'trak', tkhd + box(b'mdia', hdlr)))
        tfhd = full(b'tfhd', 0, 0x020000 | 0x08 | 0x10, struct.pack('>III', 1, 1000, 10))
        tfdt = full(b'tfdt', 1, 0, bytes(8))
        trun = full(b'trun', 0, 0x001, struct.pack('>Ii', 0xFFFFFFFF, 0))
        frag = box(b'moof', box(b'traf', tfhd + tfdt + trun)) + box(b'mdat', bytes(100))
        t = time.monotonic()
        out = fmp4.from_sample(init, frag, 5)
        print('RESULT', out is None, round(time.monotonic() - t, 2))
    """
    done = run_bounded(code, timeout_s=20)
    assert done is not None, "fmp4.from_sample ran for more than 20 s on a 2^32-1 sample trun"
    assert "RESULT True" in done.stdout, done.stderr[-800:]


# -- MPEG-TS ---------------------------------------------------------------------------------------


def ts_packet(pid: int, payload: bytes, *, start: bool = True, cc: int = 0) -> bytes:
    head = bytes([0x47, (0x40 if start else 0) | (pid >> 8), pid & 0xFF, 0x10 | cc])
    return head + payload.ljust(184, b"\xff")[:184]


def garbage_pat_stream() -> bytes:
    """A PAT whose pointer field points past its packet, then a normal-looking video packet."""
    pat = ts_packet(0, bytes([0xC0]) + b"\xff" * 183)
    video = ts_packet(0x100, b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05\x21\x00\x01\x00\x01" + b"\0\0\0\1\x65")
    return pat + video + video


def test_mpegts_from_position_passes_a_garbage_pat_over() -> None:
    """``mpegts.from_position`` documents NotTransportStream for what it cannot cut; a first PAT packet
    whose pointer field points past the packet (ffmpeg skips such a section and reads the next PAT)
    makes ``_program_tables``/``psi_section`` raise IndexError, which escapes
    ``HlsInputs._ts_from_keyframe`` and sends the clip to fallback as "IndexError: index out of range".
    Right: NotTransportStream (-> SourceInvalid) or skipping the unreadable table.
    Cause: pipeline/mpegts.py:psi_section / _program_tables (no bounds checks)."""
    data = garbage_pat_stream()
    try:
        mpegts.from_position(data, 188)
    except mpegts.NotTransportStream:
        pass


@pytest.mark.parametrize("fn", ["parameter_sets", "needs_parameter_sets"])
def test_parameter_sets_read_a_garbage_pat_as_none(fn: str) -> None:
    """``parameter_sets.parameter_sets``/``needs_parameter_sets`` ("anything else is left as it is")
    raise IndexError on a PAT whose pointer field points past the packet, and on a PMT whose
    program_info_length runs past its section; ``HlsInputs._ts_from_keyframe`` calls
    ``needs_parameter_sets`` on every cut TS run, so the clip falls back with an internal IndexError.
    Right: None / False (not a plain H.264 stream). Cause: pipeline/parameter_sets.py:_video_pid
    (psi_section, pmt_pids, pmt_streams unguarded)."""
    getattr(parameter_sets, fn)(garbage_pat_stream())


# -- playlists -------------------------------------------------------------------------------------


def test_define_line_of_letters_is_read_in_linear_time() -> None:
    """A ``#EXT-X-DEFINE:`` line of 96,000 capital letters (no ``=``; far under the 4 MiB playlist cap):
    ``hls_variables.ATTRIBUTE`` (``[A-Z0-9-]+=``) backtracks from every start position, O(n^2): measured
    5.6 s for 16 KB, so minutes for 96 KB and days for a 4 MiB line, all in the plan stage, holding
    the worker thread and the source lock. Right: linear time, SourceInvalid in well under a second.
    Cause: pipeline/hls_variables.py:_attributes (regex ATTRIBUTE with an unanchored ``+`` before ``=``)."""
    code = """
        import time
        from pipeline import hls
        from pipeline.errors import SourceInvalid
        text = '#EXTM3U\\n#EXT-X-DEFINE:' + 'A' * 96000 + '\\n#EXTINF:2,\\na.ts\\n#EXT-X-ENDLIST\\n'
        t = time.monotonic()
        try:
            hls.parse_playlist(text, 'http://cdn.example/v/index.m3u8')
        except SourceInvalid:
            pass
        print('RESULT', round(time.monotonic() - t, 2))
    """
    done = run_bounded(code, timeout_s=6)
    assert done is not None, "parse_playlist ran for more than 6 s on one 96 KB #EXT-X-DEFINE line"
    assert "RESULT" in done.stdout, done.stderr[-800:]


def test_redacting_a_hostile_value_in_an_error_message_is_linear() -> None:
    """A playlist whose ``#EXTINF`` value is 100,000 characters of ``a.a.a.…=`` (or a segment URI of that
    shape with a non-http "scheme"): the SourceInvalid message quotes the value whole, and
    ``SourceError.__init__`` passes it through ``redact.text``, whose ``_USERINFO`` pattern
    (``\\b[a-z][a-z0-9+.-]*://``) rescans the rest of the text from every word start: O(n^2), about 5 s
    for 40 KB and 13 s for a 40 KB URI (quoted twice), hours for a 4 MiB playlist. The same pattern runs
    on every log line (the structlog processor). Right: linear time (a bounded or possessive pattern, or
    the quoted value cut to a few hundred characters before redaction), SourceInvalid in well under 1 s.
    Cause: pipeline/redact.py:_USERINFO (used by redact.text), fed by pipeline/errors.py:SourceError and
    the unbounded quotes in pipeline/hls.py:parse_playlist/_absolute."""
    code = """
        import time
        from pipeline import hls
        from pipeline.errors import SourceInvalid
        text = '#EXTM3U\\n#EXTINF:' + 'a.' * 50000 + '=,\\nx.ts\\n#EXT-X-ENDLIST\\n'
        t = time.monotonic()
        try:
            hls.parse_playlist(text, 'http://cdn.example/v/index.m3u8')
        except SourceInvalid:
            pass
        print('RESULT', round(time.monotonic() - t, 2))
    """
    done = run_bounded(code, timeout_s=4)
    assert done is not None, "parse_playlist ran for more than 4 s on one 100 KB #EXTINF value"
    assert "RESULT" in done.stdout, done.stderr[-800:]


def test_redact_text_is_linear_on_dotted_words() -> None:
    """``redact.text`` on 80 KB of ``a.a.a.…`` holding one ``=`` runs far past 2 s (here: 20 KB 0.6 s,
    40 KB 7 s): quadratic in the text's length. It runs on every log line and every SourceError message,
    both of which may quote bytes from outside (playlist lines, URIs, ffprobe stderr).
    Right: well under a second. Cause: pipeline/redact.py:_USERINFO."""
    code = """
        import time
        from pipeline import redact
        t = time.monotonic()
        redact.text('a.' * 40000 + '=')
        print('RESULT', round(time.monotonic() - t, 2))
    """
    done = run_bounded(code, timeout_s=2)
    assert done is not None, "redact.text ran for more than 2 s on 80 KB of text"
    assert "RESULT" in done.stdout, done.stderr[-800:]


# -- Content-Encoding ------------------------------------------------------------------------------


def test_gzip_body_of_several_members_is_read_whole() -> None:
    """A gzip body of two members (valid gzip, RFC 1952 section 2.2: "a gzip file consists of a series of
    members"; what ``cat a.gz b.gz`` or a streaming compressor sends): ``codings.decoded`` yields only the
    first member's bytes and no error, so a playlist, segment or song comes out silently cut short (a
    playlist is then refused as "live" for its missing #EXT-X-ENDLIST, a song is muxed short).
    Right: every member decoded (as ``gzip.decompress`` does), or SourceInvalid.
    Cause: pipeline/codings.py:decoded (stops at the first member's end, ignores ``unused_data``)."""
    import gzip

    from pipeline import codings
    from pipeline.errors import SourceInvalid

    first, second = b"#EXTM3U\n#EXTINF:2,\na.ts\n", b"#EXTINF:2,\nb.ts\n#EXT-X-ENDLIST\n"
    body = gzip.compress(first) + gzip.compress(second)
    try:
        out = b"".join(codings.decoded([body[:10], body[10:]], "gzip", "http://cdn.example/p.m3u8"))
    except SourceInvalid:
        return
    assert out == first + second


def test_gzip_body_with_trailing_garbage_is_refused() -> None:
    """A gzip body followed by bytes that are not another member: the module promises "a body that is not
    valid in its coding" is SourceInvalid, but ``codings.decoded`` returns the first member and drops
    the rest without a word (``gzip.decompress`` raises BadGzipFile). Right: SourceInvalid naming the URL.
    Cause: pipeline/codings.py:decoded (``unused_data`` after ``eof`` never looked at)."""
    import gzip

    from pipeline import codings
    from pipeline.errors import SourceInvalid

    body = gzip.compress(b"\x47" + b"\0" * 187) + b"<html>proxy error</html>" * 10
    with pytest.raises(SourceInvalid):
        b"".join(codings.decoded([body], "gzip", "http://cdn.example/seg.ts"))


def test_gzip_members_are_read_in_turn_whatever_the_chunks_and_bytes_after_a_stream_are_refused() -> None:
    """The fix's edges: members split at every byte, zero padding after a member (gzip(1) skips it),
    one stray byte after a member, bytes after a zlib stream, a member cut short."""
    import gzip
    import zlib

    from pipeline import codings
    from pipeline.errors import SourceInvalid

    a, b = b"first member\n" * 50, b"second member\n" * 70
    body = gzip.compress(a) + gzip.compress(b)

    def read(chunks: list[bytes], how: str = "gzip") -> bytes:
        return b"".join(codings.decoded(chunks, how, "http://cdn.example/x"))

    for cut in range(1, len(body)):
        assert read([body[:cut], body[cut:]]) == a + b
    assert read([body + bytes(7)]) == a + b
    assert read([gzip.compress(a), bytes(3), gzip.compress(b)]) == a + b
    for bad in (gzip.compress(a) + b"x", gzip.compress(a)[:-3], zlib.compress(a) + zlib.compress(b)):
        with pytest.raises(SourceInvalid):
            read([bad], "deflate" if bad[:1] != b"\x1f" else "gzip")
