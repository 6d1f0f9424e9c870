"""The pipeline's stages. Their queue and actor names (wire contracts, DESIGN.md) live in ``actors.names``."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    PLAN = "plan"
    CLIP = "clip"
    FALLBACK = "fallback"
    ASSEMBLE = "assemble"
