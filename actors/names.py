"""Wire names: stages, queues, actors. They are contracts (DESIGN.md) and must not change."""

from __future__ import annotations

PLAN, CLIP, FALLBACK, ASSEMBLE = "plan", "clip", "fallback", "assemble"
STAGES = (PLAN, CLIP, FALLBACK, ASSEMBLE)

QUEUE = {PLAN: "render.plan", CLIP: "render.clip", FALLBACK: "render.fallback", ASSEMBLE: "render.assemble"}
ACTOR = {PLAN: "plan_render", CLIP: "extract_clip", FALLBACK: "fallback_clip", ASSEMBLE: "assemble_render"}
