"""A keyframe's presentation time that ffmpeg's fMP4 muxer wrote wrong, read back from its neighbours. Pure.

Where a fragment's first video sample is a keyframe shown *after* pictures decoded
after it (HEVC open GOPs: a CRA and its leading pictures; x264's periodic intra
refresh: a recovery-point P-frame and the B-frame before it), ffmpeg 5.1's HLS
muxer writing fMP4 segments (``-hls_segment_type fmp4``; its mp4 muxer with
``-movflags frag_keyframe`` keeps the right times) gives that keyframe the
fragment's earliest presentation time instead of its own: its composition offset
is too small, it shares its timestamp with the first picture shown, and its real
time is missing from the fragment. Every other sample keeps its right offset.

``repair`` puts the keyframe back where the fragment's other frames leave room
for it, and only where that is certain: a ``trun`` of version 0 with offsets per
sample, one sample duration throughout the fragment (a constant frame rate), the
keyframe's written time equal to the earliest of the others, the others on the
frame grid, distinct, and leaving exactly one free grid place between their
first and their last. The keyframe's offset becomes that place's (always larger:
the field keeps its size and the file its layout). A fragment of any other shape
is left as it is, so frames sharing a timestamp are still refused where a window
shows them (``frame_rule``).
"""

from __future__ import annotations

import struct

from .fmp4 import Trun, Unsupported, boxes, child, tfhd_fields, traf_track, video_track_id

#: sample_is_non_sync_sample in a sample's flags (ISO/IEC 14496-12, 8.8.3.1).
_NON_SYNC = 0x00010000


def _placed(durations: list[int], offsets: list[int]) -> int | None:
    """The first sample's composition offset from its neighbours' times (see the module docstring)."""
    step = durations[0]
    if step <= 0 or any(d != step for d in durations):
        return None
    times = [i * step + off for i, off in enumerate(offsets)]  # presentation, from the fragment's start
    others = times[1:]
    if times[0] != min(others) or len(set(others)) != len(others):
        return None
    low, high = min(others), max(others)
    if any((t - low) % step for t in others) or (high - low) // step != len(others):
        return None  # off the grid, or not exactly one free place (its span is the others and one more)
    free = set(range(low, high, step)) - set(others)
    return free.pop()


def repair(data: bytes) -> tuple[bytes, int]:
    """``data`` (an init section and fragments, the last one possibly cut off) with each fragment's
    misplaced first keyframe put back, and how many were."""
    top = boxes(data, cut_off_ok=True)
    try:
        split = next(b.end for b in top if b.type == b"moov")
        track = video_track_id(data[:split])
    except (StopIteration, Unsupported, struct.error):
        return data, 0
    out: bytearray | None = None  # a copy only where a keyframe is put back
    repaired = 0
    for moof in (b for b in top if b.type == b"moof" and b.start >= split):
        try:
            trafs = [b for b in boxes(data, moof.start + moof.header, moof.end) if b.type == b"traf"]
            mine = [t for t in trafs if traf_track(data, t) == track]
            if len(mine) != 1:
                continue
            truns = [b for b in boxes(data, mine[0].start + mine[0].header, mine[0].end) if b.type == b"trun"]
            tfhd = child(data, mine[0], b"tfhd")
            if len(truns) != 1 or tfhd is None:
                continue
            trun = Trun.parse(truns[0].body(data))
            _, _, default_duration, _ = tfhd_fields(tfhd.body(data))
        except (Unsupported, struct.error):
            continue
        field = trun.offset_field(0)
        if trun.version != 0 or field is None or len(trun.entries) < 3:
            continue  # version 1 holds negative offsets: a writer using it has no reason to misplace
        first_flags = trun.first_flags if trun.first_flags is not None else trun.entries[0][2]
        durations = [d if d is not None else default_duration for d, _, _, _ in trun.entries]
        if first_flags is None or first_flags & _NON_SYNC or None in durations:
            continue
        offsets = [cts or 0 for _, _, _, cts in trun.entries]
        place = _placed([d or 0 for d in durations], offsets)
        if place is None:
            continue
        out = out if out is not None else bytearray(data)
        struct.pack_into(">I", out, truns[0].start + truns[0].header + field, place)
        repaired += 1
    return (data if out is None else bytes(out)), repaired
