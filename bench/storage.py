"""The S3 backend's cost against the file backend: the 60-line job on each, and per-clip transfers.

Both runs use the same machine, CDN profile and job. The S3 store is moto's
server on loopback (clipline.dev.s3), so the figures are the protocol's and
the client's cost (signing, HTTP, the transfer manager), not a network's.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from clipline.dev.cdn import LoopbackCDN
from clipline.dev.s3 import LoopbackS3

from . import job
from .harness import Env, Workers, reset_state, submit, wait_final


def _render(env: Env, cdn: LoopbackCDN, cap: int, label: str) -> tuple[str, dict[str, Any]]:
    reset_state(env)
    workers = Workers(env)
    workers.start("--stage", "all", "--concurrency", str(cap))
    try:
        workers.wait_ready(4)
        job_id = f"bench-store-{label}-{int(time.time())}"
        submit(env, job.request(job_id, cdn))
        record = wait_final(env, job_id)
    finally:
        workers.stop()
    render = (record.metrics or {}).get("render", {})
    stats, store = render.get("clip_stats", {}), render.get("storage", {})
    created, finished = record.created_at, record.finished_at
    return job_id, {
        "status": record.status,
        "wall_s": round((finished - created).total_seconds(), 2),
        "frames": render.get("frames"),
        "assembly_ms": stats.get("assembly_ms"),
        "clips_fetch_ms": store.get("fetch_ms"),
        "publish_ms": store.get("publish_ms"),
        "extract_p95_ms": stats.get("p95_extract_ms"),
        "output_path": record.output_path,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)


def _per_clip(server: LoopbackS3, job_id: str, clips: list[Path], scratch: Path) -> dict[str, Any]:
    """Each clip uploaded (under its own key) and then downloaded through the S3 backend, one at a time."""
    import os

    from pipeline.storage import layout
    from pipeline.storage.s3 import S3Storage

    os.environ.update({k: v for k, v in server.env().items() if k.startswith("AWS_")})
    st = S3Storage(server.bucket, server.prefix, endpoint_url=server.endpoint_url)
    up, down = [], []
    for i, clip in enumerate(clips):
        key = layout.clip(job_id, i)
        t0 = time.perf_counter()
        st.put_file(key, clip)
        up.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        st.get_file(key, scratch / clip.name)
        down.append((time.perf_counter() - t0) * 1000)
    sizes = [c.stat().st_size for c in clips]
    return {
        "clips": len(clips),
        "mean_clip_kb": round(statistics.mean(sizes) / 1024, 1),
        "upload_ms_p50": _pct(up, 50),
        "upload_ms_p95": _pct(up, 95),
        "download_ms_p50": _pct(down, 50),
        "download_ms_p95": _pct(down, 95),
    }


def _replay(env: Env, server: LoopbackS3, cdn: LoopbackCDN, job_id: str, repeats: int = 5) -> dict[str, Any]:
    """The assembly's own work, repeated on the same 60 clips from each store, alternating: fetch the
    clips, concatenate and mux the song, verify the frames, publish final.mp4 and the poster.

    The render runs measure the same inside the pipeline, but with clip workers of other jobs (and
    on a shared machine, other programs) competing; this isolates it.
    """
    from pipeline import assembly
    from pipeline.context import Context, JobView
    from pipeline.models import parse_request
    from pipeline.settings import load_settings
    from pipeline.timeline import build_slots, total_frames

    request = parse_request(job.request(job_id, cdn))
    view = JobView(request, build_slots(request))
    expected = total_frames(request)
    track = env.root / "work" / job_id / "audio" / "track.m4a"
    base = {k: v for k, v in env.vars().items() if k.startswith(("CLIPLINE_", "TWELVELABS_"))}
    stores = {
        "file": {**base, "CLIPLINE_OUTPUT_DIR": str(env.root / "replay-output")},
        "s3": {**base, **{k: v for k, v in server.env().items() if k.startswith("CLIPLINE_")}},
    }
    got: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
    for _ in range(repeats):
        for name, variables in stores.items():
            ctx = Context(load_settings(variables))
            timing: dict[str, Any] = {}
            t0 = time.perf_counter()
            clips = assembly._fetch(ctx, view, timing)
            t1 = time.perf_counter()
            final = assembly.results.local_target(ctx, job_id, "final.mp4")
            assembly._mux(ctx, view, clips, final, track, expected)
            t2 = time.perf_counter()
            assembly._publish(ctx, view, final, expected, timing)
            t3 = time.perf_counter()
            got[name].append(
                {
                    "fetch_ms": (t1 - t0) * 1000,
                    "mux_ms": (t2 - t1) * 1000,
                    "publish_ms": (t3 - t2) * 1000,
                    "total_ms": (t3 - t0) * 1000,
                }
            )
    out: dict[str, Any] = {"repeats": repeats}
    for name, runs in got.items():
        out[name] = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
        out[name]["total_ms_min"] = round(min(r["total_ms"] for r in runs), 1)
    out["s3_over_file"] = round(out["s3"]["total_ms"] / out["file"]["total_ms"], 2)
    return out


def compare(env: Env, cdn: LoopbackCDN, cap: int = 4, repeats: int = 2) -> dict[str, Any]:
    out: dict[str, Any] = {"cap": cap, "runs": {"file": [], "s3": []}}
    base_extra = dict(env.extra)
    with LoopbackS3("clipline-bench", log=env.root / "moto.log") as server:
        for r in range(repeats):
            env.extra = {**base_extra, "CLIPLINE_KEEP_WORK": "true"}
            file_job, fig = _render(env, cdn, cap, f"file{r}")
            out["runs"]["file"].append(fig)
            print(f"[storage] file: {fig}", flush=True)
            if r == 0:  # the clips the file run kept, through S3 one by one
                clips = sorted((env.root / "work" / file_job / "clips").glob("*.mp4"))
                scratch = env.root / "per-clip"
                scratch.mkdir(parents=True, exist_ok=True)
                out["per_clip"] = _per_clip(server, file_job, clips, scratch)
                print(f"[storage] per clip: {out['per_clip']}", flush=True)
                out["assembly_replay"] = _replay(env, server, cdn, file_job)
                print(f"[storage] assembly replay: {out['assembly_replay']}", flush=True)
            env.extra = {**base_extra, **server.env(), "CLIPLINE_S3_ABORT_UPLOADS_AFTER_S": "0"}
            _, fig = _render(env, cdn, cap, f"s3{r}")
            out["runs"]["s3"].append(fig)
            print(f"[storage] s3: {fig}", flush=True)
            server.reset()
    env.extra = base_extra
    for backend in ("file", "s3"):
        runs = out["runs"][backend]
        out[backend] = {
            k: round(statistics.median(r[k] for r in runs), 1)
            for k in ("wall_s", "assembly_ms")
            if all(r.get(k) is not None for r in runs)
        }
        fetch = [r["clips_fetch_ms"] for r in runs if r.get("clips_fetch_ms") is not None]
        out[backend]["clips_fetch_ms"] = round(statistics.median(fetch), 1) if fetch else None
    out["assembly_s3_over_file"] = round(out["s3"]["assembly_ms"] / out["file"]["assembly_ms"], 2)
    return out
