"""assemble_render: concatenate, mux the song, write final.mp4 and report.json (once per job)."""

from __future__ import annotations

from pipeline import assembly
from pipeline.logs import bind_job

from .runtime import context


def assemble_render(job_id: str, trace_id: str | None = None) -> None:
    with bind_job(job_id, trace_id):
        assembly.assemble(context(), job_id)
