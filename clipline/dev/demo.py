"""``clipline demo``: a 60-line job rendered end to end on this machine.

Generates small sample videos with ffmpeg (cached in ``.demo/media-cache``),
serves them as HLS from a loopback CDN with a TwelveLabs-style video API,
starts ``clipline worker --stage all`` against the real RabbitMQ and Redis,
submits the job and follows it to the end. One video is gone from the CDN but
present locally, one is gone everywhere, so the report shows both fallbacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.subprocesses import tied_to_caller

from .cdn import LoopbackCDN
from .samples import SourceSpec, build_sample_set

DEMO_DIR = Path(".demo")
API_KEY, INDEX_ID = "demo-key", "demo-index"
WIDTH, HEIGHT, FPS = 640, 360, 30

SOURCES = [
    SourceSpec("v_sunrise", duration_s=48.0),
    SourceSpec("v_city", duration_s=40.0),
    SourceSpec("v_ocean", duration_s=36.0),
    SourceSpec("v_forest", duration_s=44.0),
    SourceSpec("v_crowd", duration_s=30.0),
    SourceSpec("v_archive", duration_s=30.0, hls=False, local=True),  # gone from the CDN, kept locally
    SourceSpec("v_deleted", duration_s=30.0, hls=False, local=False),  # gone everywhere
]


def demo_request(job_id: str, lines: int, cdn: LoopbackCDN) -> dict[str, Any]:
    """A song of ``lines`` lyric lines (2.2-3.8 s each) cut from the sample videos, deterministic."""
    rng = random.Random(7)
    hls = [s for s in SOURCES if s.hls]
    out, t = [], 0
    for i in range(lines):
        length = rng.randrange(2200, 3800, 50)
        if i % 23 == 11:
            src = SOURCES[5]
        elif i % 29 == 17:
            src = SOURCES[6]
        else:
            src = hls[rng.randrange(len(hls))]
        start = rng.randrange(0, int(src.duration_s * 1000) - 4000, 40)
        clip: dict[str, Any] = {
            "video_id": src.video_id,
            "start_ms": start,
            "end_ms": start + length + rng.choice((-600, 0, 400)),
        }
        if src.hls and i % 2 == 0:
            clip["hls_url"] = cdn.hls_url(src.video_id)  # the rest resolve through the video API
        out.append(
            {
                "text": f"第{i + 1}句歌词 / lyric line {i + 1}",
                "start_ms": t,
                "end_ms": t + length,
                "clip": clip,
            }
        )
        t += length
    return {
        "job_id": job_id,
        "mix_request_id": f"demo-{job_id}",
        "output": {"width": WIDTH, "height": HEIGHT, "fps": FPS},
        "audio": {"url": cdn.url("audio/song.m4a")},
        "lines": out,
    }


#: What the CLI needs to see the demo's jobs afterwards (the loopback video API is gone by then).
REACH_JOBS = (
    "CLIPLINE_DATABASE_URL",
    "CLIPLINE_WORK_DIR",
    "CLIPLINE_OUTPUT_DIR",
    "CLIPLINE_MEDIA_DIR",
    "CLIPLINE_BROKER_URL",
    "CLIPLINE_REDIS_URL",
)


def write_env_file(environ: dict[str, str]) -> Path:
    """``.demo/env``: ``export`` lines that point the CLI at the demo's database, directories, broker and
    Redis, for ``source .demo/env``."""
    path = DEMO_DIR / "env"
    lines = [f"export {k}={shlex.quote(environ[k])}" for k in REACH_JOBS if k in environ]
    path.write_text(
        "# clipline demo: `source` this file to reach the demo's jobs with the CLI\n"
        + "\n".join(lines)
        + "\n"
    )
    return path.resolve()


def _env(cdn: LoopbackCDN, media_dir: Path) -> dict[str, str]:
    """The demo's own paths and video API; broker and Redis stay the operator's (or the defaults)."""
    env = {
        "CLIPLINE_DATABASE_URL": f"sqlite:///{(DEMO_DIR / 'clipline.db').resolve()}",
        "CLIPLINE_WORK_DIR": str((DEMO_DIR / "work").resolve()),
        "CLIPLINE_OUTPUT_DIR": str((DEMO_DIR / "output").resolve()),
        "CLIPLINE_MEDIA_DIR": str(media_dir.resolve()),
        "TWELVELABS_API_URL": cdn.api_url,
        "TWELVELABS_API_KEY": API_KEY,
        "TWELVELABS_INDEX_ID": INDEX_ID,
        # The demo's CDN and video API listen on loopback, which production refuses.
        "CLIPLINE_ALLOW_PRIVATE_NETWORKS": "true",
    }
    return env


def _loopback_s3(stack: contextlib.ExitStack[bool | None]) -> dict[str, str]:
    """``--s3``: moto's S3 server on loopback (a dev dependency), its bucket, and the variables to use it."""
    try:
        import moto  # noqa: F401
    except ImportError as exc:
        raise SystemExit("clipline demo --s3 needs moto's server: pip install 'moto[server]'") from exc
    from .s3 import LoopbackS3

    server = stack.enter_context(LoopbackS3("clipline-demo", log=DEMO_DIR / "s3.log"))
    print(f"S3 on loopback: {server.storage_url} at {server.endpoint_url}", file=sys.stderr, flush=True)
    return server.env()


def main(*, lines: int = 60, concurrency: int | None = None, s3: bool = False) -> int:
    from pipeline import jobs, results
    from pipeline.context import Context
    from pipeline.models import JobStatus
    from pipeline.settings import get_settings

    DEMO_DIR.mkdir(exist_ok=True)
    print("preparing sample videos (cached after the first run) ...", file=sys.stderr, flush=True)
    samples = build_sample_set(
        DEMO_DIR / "media-cache",
        SOURCES,
        song_s=lines * 3.8 + 5,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        segment_s=4.0,
    )
    with contextlib.ExitStack() as servers:
        cdn = servers.enter_context(LoopbackCDN(samples.root, api_key=API_KEY, index_id=INDEX_ID))
        os.environ.update(_env(cdn, samples.media_dir))
        if s3:
            os.environ.update(_loopback_s3(servers))
        get_settings.cache_clear()
        settings = get_settings()
        settings.ffmpeg_path()
        cap = concurrency or settings.render_clip_concurrency
        log_path = DEMO_DIR / "worker.log"
        with open(log_path, "ab") as log:
            # No metrics endpoint: the demo's worker never collides with an operator's on port 9191.
            worker = subprocess.Popen(
                [sys.executable, "-m", "clipline.cli", "worker", "--stage", "all"]
                + ["--concurrency", str(cap), "--metrics-port", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ),
                start_new_session=True,
                preexec_fn=tied_to_caller(),  # a demo killed with -9 takes its worker with it
            )
        try:
            ctx = Context(settings)
            job_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-c{cap}"
            started = time.monotonic()
            request = DEMO_DIR / f"{job_id}.json"
            request.write_text(json.dumps(demo_request(job_id, lines, cdn), ensure_ascii=False, indent=1))
            print(
                f"submitting {request}: {lines} lines, clip concurrency {cap}; worker logs in {log_path}",
                file=sys.stderr,
                flush=True,
            )
            # The operator's own command: `clipline submit --wait` shows the progress bar.
            subprocess.run(
                [sys.executable, "-m", "clipline.cli", "submit", str(request), "--wait"],
                env=dict(os.environ),
                stdout=subprocess.DEVNULL,
                timeout=1800,
                check=False,
            )
            status = JobStatus(ctx.store.get(job_id).status)
            wall = time.monotonic() - started
            job = ctx.store.get(job_id)
            stats = (job.metrics or {}).get("render", {}).get("clip_stats", {})
            print(f"\njob {job_id}: {status.value} in {wall:.1f} s")
            print(f"  video : {job.output_path}")
            print(f"  report: {job.report_path}")
            if s3 and job.output_path:  # the loopback server forgets everything when the demo ends
                copy = DEMO_DIR / "s3-results" / job_id / "final.mp4"
                ctx.storage.get_file(results.key(job_id, "final.mp4"), copy)
                print(f"  copied out of the bucket to {copy}")
            print(
                f"  clips : {stats.get('succeeded')} ok, {stats.get('fallback_local')} from local copies, "
                f"{stats.get('placeholder')} placeholders, {stats.get('failed')} failed; "
                f"peak {stats.get('peak_concurrency')} at once; {stats.get('bytes_fetched', 0) / 1e6:.1f} MB "
                f"fetched; extract p95 {stats.get('p95_extract_ms')} ms"
            )
            report = results.read_report(ctx, job)
            for line in (report or {}).get("summary", {}).get("text", []):
                print(f"  - {line}")
            env_file = write_env_file(dict(os.environ))
            cli = Path(sys.executable).with_name("clipline")
            print(
                f"\nThe demo keeps its own database and directories. To reach its jobs with the CLI "
                f"({cli}; `source {cli.parent / 'activate'}` puts it on PATH):\n"
                f"  source {env_file}\n  clipline status {job_id}\n  clipline jobs"
            )
            return jobs.exit_code(status)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
