"""Outside audit, fixed since: the clip cache's key of an fMP4 source depended on the process's hash seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
from pipeline.clip_cache import cache_key, source_identity
from pipeline.ffmpeg_args import EncodeProfile
from pipeline.hls import parse_playlist, select_segments

text = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000,
seg0.m4s
#EXTINF:2.000,
seg1.m4s
#EXTINF:2.000,
seg2.m4s
#EXT-X-ENDLIST
"""
playlist = parse_playlist(text, "http://127.0.0.1:9/hls/v/index.m3u8")
segments = select_segments(playlist, 0, 6000)
identity = source_identity(playlist, segments, lambda url: f"length:{1000 + len(url)}")
print(cache_key(identity, 0, 6000, EncodeProfile(160, 90, 30)))
'''


def key_in_a_process(seed: int) -> str:
    env = {**os.environ, "PYTHONHASHSEED": str(seed)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_an_fmp4_sources_cache_key_is_the_same_in_every_worker_process() -> None:
    """source_identity lists each fMP4 segment's URL and its init section's from a set, whose order follows
    the process's (randomised) string hash: the same source, window and profile get another cache key in
    another worker process or after a restart, so the documented cross-job cache hit does not happen."""
    keys = {seed: key_in_a_process(seed) for seed in range(8)}
    assert len(set(keys.values())) == 1, keys
