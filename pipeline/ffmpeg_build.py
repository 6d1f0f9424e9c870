"""What this ffmpeg build can do: its decoders and filters, each list read once per process."""

from __future__ import annotations

import dataclasses
import functools

import structlog

from .ffmpeg_args import TONE_MAP_FILTERS, CutInput, decoders_argv, filters_argv
from .subprocesses import run

log = structlog.get_logger(__name__)


def _rows(table: bytes) -> list[list[str]]:
    return [ln.split() for ln in table.decode("utf-8", "replace").splitlines()]


@functools.cache
def decoders(ffmpeg: str) -> frozenset[str]:
    """The decoder names this ffmpeg build has (``ffmpeg -decoders``)."""
    rows = _rows(run(decoders_argv(ffmpeg), timeout_s=30).stdout)
    after_legend = next((n for n, row in enumerate(rows) if row and row[0].startswith("------")), len(rows))
    return frozenset(row[1] for row in rows[after_legend + 1 :] if len(row) > 1)


@functools.cache
def filters(ffmpeg: str) -> frozenset[str]:
    """The filter names this ffmpeg build has (``ffmpeg -filters``)."""
    rows = _rows(run(filters_argv(ffmpeg), timeout_s=30).stdout)  # flags, name, in->out, description
    return frozenset(row[1] for row in rows if len(row) > 2 and "->" in row[2])


def with_tone_mapping(ffmpeg: str, inputs: list[CutInput]) -> list[CutInput]:
    """``inputs`` as given where none is HDR or this ffmpeg can tone-map; else HDR is cut as it is (its
    colours wrong, every frame right), and said so (``clip.hdr_not_tone_mapped``)."""
    hdr = [i for i in inputs if i.colour.hdr and i.tone_map]
    if not hdr:
        return inputs
    missing = [f for f in TONE_MAP_FILTERS if f not in filters(ffmpeg)]
    if not missing:
        return inputs
    log.warning(
        "clip.hdr_not_tone_mapped",
        transfer=hdr[0].colour.transfer,
        why=f"this ffmpeg has no {' or '.join(missing)} filter (build it with zimg: --enable-libzimg)",
    )
    return [dataclasses.replace(i, tone_map=False) for i in inputs]
