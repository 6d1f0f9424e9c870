"""The ``clipline`` command: worker, submit, status, jobs, cancel, retry, stats, cleanup, config, api."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import jobs
from pipeline.context import Context
from pipeline.errors import (
    ClipLineError,
    FFmpegMissing,
    JobConflict,
    JobNotFound,
    JobStateConflict,
    RequestInvalid,
)
from pipeline.models import JobStatus
from pipeline.settings import SettingsError, get_settings
from pipeline.stages import Stage

from .progress import wait_for

if TYPE_CHECKING:
    from actors.sender import Sender


def _ctx() -> Context:
    return Context(get_settings())


def _sender() -> Sender:
    from actors.sender import Sender

    return Sender(get_settings())


def _print_json(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str), flush=True)


def cmd_submit(args: argparse.Namespace) -> int:
    ctx = _ctx()
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestInvalid(f"(body): not valid JSON: {exc}", field="(body)") from exc
    submitted = jobs.submit(ctx, raw, _sender().enqueue_plan)
    job_id = submitted.job.id
    if not args.json:
        print(job_id, flush=True)
    if not submitted.created:
        print(f"job {job_id} already exists ({submitted.job.status}); not rendering again", file=sys.stderr)
    code = 0
    if args.wait:
        status = wait_for(ctx, job_id, show=True)
        code = jobs.exit_code(status)
        if not args.json:
            job = ctx.store.get(job_id)
            print(f"{status.value}: video {job.output_path}\nreport {job.report_path}", file=sys.stderr)
    if args.json:
        _print_json(jobs.status_object(ctx.store.get(job_id)))
    return code


def cmd_status(args: argparse.Namespace) -> int:
    ctx = _ctx()
    if args.watch:
        wait_for(ctx, args.job_id, show=True)
    job = ctx.store.get(args.job_id)
    obj = jobs.status_object(job)
    if args.json:
        _print_json(obj)
    else:
        for key in ("job_id", "status", "progress", "output_path", "report_path", "error"):
            print(f"{key:12} {obj[key]}")
    status = JobStatus(job.status)
    return jobs.exit_code(status) if status.is_final else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    job = jobs.cancel(_ctx(), args.job_id)
    print(f"{job.id} {job.status}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    ctx = _ctx()
    done = jobs.retry(ctx, args.job_id, _sender().enqueue_plan)
    total = len(done.job.render_request().lines)
    what = "every slot" if len(done.slots) == total else f"{len(done.slots)} slot(s) {done.slots}"
    print(f"{done.job.id} attempt {done.job.attempts}: rendering {what} again", file=sys.stderr)
    code = 0
    if args.wait:
        code = jobs.exit_code(wait_for(ctx, args.job_id, show=True))
    if args.json:
        _print_json(dict(jobs.status_object(ctx.store.get(args.job_id)), retried_slots=done.slots))
    return code


def cmd_jobs(args: argparse.Namespace) -> int:
    status = JobStatus(args.status) if args.status else None
    found = _ctx().store.list(status=status, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json({"jobs": [jobs.status_object(j) for j in found]})
        return 0
    print(f"{'job_id':28} {'status':20} {'progress':>8} {'attempt':>7}  created_at")
    for j in found:
        created = j.created_at.strftime("%Y-%m-%d %H:%M:%S") if j.created_at else "-"
        print(f"{j.id:28} {j.status:20} {j.progress:>7}% {j.attempts:>7}  {created}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from actors.queues import depths
    from pipeline import job_stats, retention

    settings = get_settings()
    window = retention.parse_age(args.window, option="--window")
    out = job_stats.summarize(_ctx(), window_s=window, queues=depths(settings))
    if args.json:
        _print_json(out)
        return 0
    print("jobs by status: " + ", ".join(f"{k} {v}" for k, v in out["jobs_by_status"].items()))
    print(f"over the last {args.window}: ended {out['ended_in_window'] or 'none'}")
    rate = out["success_rate"]
    print(f"  success rate      {'-' if rate is None else f'{rate:.1%}'} (cancelled jobs not counted)")
    d = out["duration_s"]
    print(f"  job duration      avg {d['avg']} s, p95 {d['p95']} s, max {d['max']} s ({d['count']} jobs)")
    ratio = out["placeholder_ratio"]
    clips = out["clips"]
    print(
        f"  placeholder ratio {'-' if ratio is None else f'{ratio:.1%}'} "
        f"({clips['placeholder']} of {clips['total']} clips; {clips['fallback_local']} local)"
    )
    queues = out["queues"] or {}
    if "error" in queues:
        print(f"queues: {queues['error']}")
    for q in queues.values():
        if isinstance(q, dict):
            print(
                f"queue {q['queue']:16} ready {q['ready']:>5}  delayed {q['delayed']:>5}  "
                f"dead-lettered {q['dead_lettered']:>5}  consumers {q['consumers']}"
            )
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from pipeline import retention

    age = retention.parse_age(args.older_than)
    removed = retention.cleanup(_ctx(), age, keep_outputs=args.keep_outputs, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for r in removed:
        what = "work files" if args.keep_outputs else "work files, outputs and record"
        print(f"{r.job_id} ({r.status}, ended {r.finished_at}): {verb} {what}, {r.bytes} bytes")
    total = sum(r.bytes for r in removed)
    print(f"{len(removed)} job(s), {total} bytes {verb}; running jobs are never touched")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:

    from . import worker

    settings = get_settings()
    stages = tuple(Stage) if args.stage == "all" else (Stage(args.stage),)
    if worker.NEEDS_FFMPEG.intersection(stages):
        settings.ffmpeg_path()
        settings.ffprobe_path()
    from .metrics_server import MetricsServer
    from .sweeper import Sweeper

    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    metrics = MetricsServer(port) if port else None
    sweeper = Sweeper(settings) if Stage.ASSEMBLE in stages else None
    try:
        if metrics is not None:
            metrics.start()
        if sweeper is not None:
            sweeper.start()
        commands = worker.plan_commands(
            settings, args.stage, args.concurrency, args.processes, metrics.env() if metrics else None
        )
        return worker.run(commands)
    finally:
        if sweeper is not None:
            sweeper.stop()
        if metrics is not None:
            metrics.stop()


def cmd_config(args: argparse.Namespace) -> int:
    from pipeline.liveconfig import LIVE_KEYS, UnknownKey

    ctx = _ctx()
    live = ctx.live
    try:
        if args.action == "set":
            if args.key is None or args.value is None:
                raise RequestInvalid("config set needs KEY and VALUE", field="value")
            value = live.set(args.key, args.value)
            print(f"{args.key} = {value} (workers pick it up within a few seconds)")
        elif args.action == "unset":
            if args.key is None:
                raise RequestInvalid("config unset needs KEY", field="key")
            live.unset(args.key)
            print(f"{args.key} back to its environment value")
        else:
            values, stored = live.refresh(force=True), live.stored()
            shown = [args.key] if args.key else list(LIVE_KEYS)
            for key in shown:
                if key not in LIVE_KEYS:
                    raise UnknownKey(f"{key!r} is not a live setting; live settings: {', '.join(LIVE_KEYS)}")
                source = "redis" if key in stored else "environment"
                if args.action == "get":
                    print(values[key])
                else:
                    print(f"{key:24} {str(values[key]):8} ({source}) {LIVE_KEYS[key].help}")
            if args.action == "list":
                cap = live.cluster_cap()
                shown_cap = cap if cap is not None else "none (each worker its own cap)"
                print(f"{'cluster-wide clip cap':24} {shown_cap}")
    except (UnknownKey, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return jobs.EXIT_INVALID
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from pipeline import reconcile

    settings = get_settings()
    stale = settings.reconcile_after_s if args.stale_after is None else args.stale_after
    repairs = reconcile.sweep(_ctx(), _sender(), stale_s=stale)
    for r in repairs:
        print(f"{r.job_id}: {r.action} ({r.detail})")
    print(f"{len(repairs)} repair(s)")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from .api import serve

    return serve(get_settings(), args.host, args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from .dev import demo

    return demo.main(lines=args.lines, concurrency=args.concurrency)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    w = sub.add_parser("worker", help="run stage workers until SIGTERM")
    w.add_argument("--stage", choices=[*(s.value for s in Stage), "all"], default="all")
    w.add_argument("--concurrency", type=int, help="clip cap (default RENDER_CLIP_CONCURRENCY)")
    w.add_argument("--processes", type=int, default=1, help="worker processes per stage")
    w.add_argument("--metrics-port", type=int, help="Prometheus port (default CLIPLINE_METRICS_PORT; 0: off)")
    w.set_defaults(func=cmd_worker)

    s = sub.add_parser("submit", help="submit a render request (JSON file, - for stdin)")
    s.add_argument("file")
    s.add_argument("--wait", action="store_true", help="block until the job is final")
    s.add_argument("--json", action="store_true", help="end with one JSON object on stdout")
    s.set_defaults(func=cmd_submit)

    st = sub.add_parser("status", help="show a job")
    st.add_argument("job_id")
    st.add_argument("--json", action="store_true")
    st.add_argument("--watch", action="store_true", help="follow the job until it is final")
    st.set_defaults(func=cmd_status)

    k = sub.add_parser("cancel", help="cancel a job that has not ended")
    k.add_argument("job_id")
    k.set_defaults(func=cmd_cancel)

    rt = sub.add_parser("retry", help="render a job's missing footage again (FAILED/CANCELLED: all of it)")
    rt.add_argument("job_id")
    rt.add_argument("--wait", action="store_true", help="block until the job is final")
    rt.add_argument("--json", action="store_true", help="end with one JSON object on stdout")
    rt.set_defaults(func=cmd_retry)

    j = sub.add_parser("jobs", help="list jobs, newest first")
    j.add_argument("--status", choices=[s.value for s in JobStatus], type=str.upper)
    j.add_argument("--limit", type=int, default=20)
    j.add_argument("--offset", type=int, default=0)
    j.add_argument("--json", action="store_true")
    j.set_defaults(func=cmd_jobs)

    sa = sub.add_parser("stats", help="jobs by status, queue depths, success rate, durations")
    sa.add_argument("--window", default="24h", help="look back this far: 90m, 24h, 7d (default 24h)")
    sa.add_argument("--json", action="store_true")
    sa.set_defaults(func=cmd_stats)

    cl = sub.add_parser("cleanup", help="remove finished jobs older than an age (never a running job)")
    cl.add_argument("--older-than", required=True, help="age like 24h, 7d, 90m")
    cl.add_argument("--keep-outputs", action="store_true", help="remove work files only")
    cl.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    cl.set_defaults(func=cmd_cleanup)

    c = sub.add_parser("config", help="read or change live settings (no restart needed)")
    c.add_argument("action", choices=["get", "set", "unset", "list"])
    c.add_argument("key", nargs="?")
    c.add_argument("value", nargs="?")
    c.set_defaults(func=cmd_config)

    r = sub.add_parser("reconcile", help="repair unfinished jobs whose coordination state was lost")
    r.add_argument(
        "--stale-after", type=float, help="seconds without progress (default CLIPLINE_RECONCILE_AFTER_S)"
    )
    r.set_defaults(func=cmd_reconcile)

    a = sub.add_parser("api", help="serve the HTTP API")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8080)
    a.set_defaults(func=cmd_api)

    d = sub.add_parser("demo", help="render a 60-line sample job end to end on this machine")
    d.add_argument("--lines", type=int, default=60)
    d.add_argument("--concurrency", type=int, default=None)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline import logs

    try:
        logs.configure(get_settings().log_level)
        return int(args.func(args))
    except (RequestInvalid, JobConflict) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return jobs.EXIT_INVALID
    except (JobNotFound, JobStateConflict, FFmpegMissing, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return jobs.EXIT_INVALID
    except ClipLineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return jobs.EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
