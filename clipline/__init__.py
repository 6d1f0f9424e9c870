"""clipline: render lyric-synced music videos from HLS clips, in parallel, on Dramatiq."""

__version__ = "0.1.0"
