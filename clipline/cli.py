"""The clipline command line: run workers, submit and follow render jobs, operate the service."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from pipeline import jobs
from pipeline.context import Context
from pipeline.errors import RequestInvalid
from pipeline.models import JobStatus
from pipeline.observe import HandOver
from pipeline.problems import load_json
from pipeline.settings import Settings, get_settings
from pipeline.stages import Stage

from . import cli_db, cli_dlq, cli_queues, exits
from .exits import Exit, WaitTimeout
from .progress import wait_for

if TYPE_CHECKING:
    from actors.sender import Sender

EXIT_CODES = """exit codes:
  0    the job is COMPLETED or COMPLETED_WITH_GAPS (or the command did what it was asked)
  1    the job is FAILED or CANCELLED
  2    bad request: unreadable file, invalid JSON or request (the field is named), unknown job,
       a state that forbids the action, a bad option or setting, ffmpeg missing, a port in use
  3    infrastructure unavailable: broker, Redis, database or the store of clips and results
       (bucket missing, credentials rejected, unreachable), or the database schema is not this
       code's (run `clipline db upgrade`)
  4    --wait --timeout ran out; the job is still running
  130  interrupted (Ctrl-C)
With --json, stdout ends with one JSON object whatever the outcome (errors: {"error": {"code",
"message", "field"}, "exit_code"}); messages for people go to stderr."""


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (a usage error naming the option, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected {bound}")
        return value

    return parse


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is out of range: expected seconds, 0 or more")
    return value


def _ctx() -> Context:
    """A command's context: a job it ends (cancel, reconcile) is counted by the workers' metrics."""
    settings = get_settings()
    return Context(settings, observer=HandOver.from_url(settings.redis_url))


def _sender() -> Sender:
    from actors.sender import Sender

    return Sender(get_settings())


def _print_json(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str), flush=True)


def _read_request(name: str) -> Any:
    """The request JSON from a file (``-``: stdin); RequestInvalid naming the file when it cannot be."""
    label = "stdin" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise RequestInvalid(f"cannot read {label}: {exc.strerror or exc}", field="file") from exc
    except UnicodeDecodeError as exc:
        raise RequestInvalid(f"{label} is not UTF-8 text: {exc.reason}", field="file") from exc
    if not text.strip():
        raise RequestInvalid(f"{label} is empty: expected a render request (a JSON object)", field="file")
    try:
        raw = load_json(text)
    except json.JSONDecodeError as exc:
        raise RequestInvalid(
            f"{label} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="file"
        ) from exc
    except ValueError as exc:  # NaN, nested too deep, an integer too long
        raise RequestInvalid(f"{label} is not valid JSON: {exc}", field="file") from exc
    if not isinstance(raw, dict):
        raise RequestInvalid(
            f"{label} holds a JSON {type(raw).__name__}, not a render request (a JSON object with "
            "lines, output, audio, ...)",
            field="file",
        )
    return raw


def _enqueue_plan(request: dict[str, Any], *, again: str = "submit the same request again") -> None:
    """Send the plan; when the broker is down, say what became of the job (it is recorded)."""
    from actors.queues import BROKER_ERRORS

    try:
        _sender().enqueue_plan(request)
    except BROKER_ERRORS as exc:
        raise exits.Unavailable(
            "broker",
            f"{type(exc).__name__}: {exc}; job {request['job_id']} is recorded as PENDING: {again} once "
            "the broker is back (it renders once), or the workers' reconciler sends it",
        ) from exc


def _enqueue_retry(request: dict[str, Any]) -> None:
    """Send a retry's plan; broker down: its attempt is recorded, and the same retry again sends it."""
    job_id = request["job_id"]
    _enqueue_plan(request, again=f"its next attempt is recorded; run `clipline retry {job_id}` again")


def _follow(ctx: Context, job_id: str, timeout_s: float | None) -> JobStatus:
    try:
        return wait_for(ctx, job_id, show=True, timeout_s=timeout_s)
    except TimeoutError as exc:
        raise WaitTimeout(f"{exc}; it goes on: `clipline status {job_id} --watch` follows it") from exc


def _check_timeout(args: argparse.Namespace) -> None:
    if args.timeout is not None and not args.wait:
        raise RequestInvalid("--timeout needs --wait (it bounds the wait)", field="--timeout")


def cmd_submit(args: argparse.Namespace) -> int:
    _check_timeout(args)
    ctx = _ctx()
    raw = _read_request(args.file)
    submitted = jobs.submit(ctx, raw, _enqueue_plan)
    job_id = submitted.job.id
    if not args.json:
        print(job_id, flush=True)
    if not submitted.created:
        print(f"job {job_id} already exists ({submitted.job.status}); not rendering again", file=sys.stderr)
    code = 0
    if args.wait:
        try:
            status = _follow(ctx, job_id, args.timeout)
        except WaitTimeout as exc:
            if args.json:  # the job's state is the one JSON object; the timeout is the exit code
                _print_json(jobs.detail(ctx, ctx.store.get(job_id)).model_dump(mode="json"))
            print(f"error: {exc}", file=sys.stderr)
            return Exit.TIMEOUT
        code = jobs.exit_code(status)
        if not args.json:
            job = ctx.store.get(job_id)
            print(f"{status.value}: video {job.output_path}\nreport {job.report_path}", file=sys.stderr)
    if args.json:
        _print_json(jobs.detail(ctx, ctx.store.get(job_id)).model_dump(mode="json"))
    return code


def cmd_status(args: argparse.Namespace) -> int:
    ctx = _ctx()
    if args.watch:
        wait_for(ctx, args.job_id, show=True)
    job = ctx.store.get(args.job_id)
    obj = jobs.detail(ctx, job).model_dump(mode="json")  # job.schema.json, as GET /jobs/{id}
    if args.json:
        _print_json(obj)
    else:
        for key in ("job_id", "status", "progress", "output_path", "report_path", "output_url", "error"):
            shown = "-" if obj[key] in (None, "") else f"{obj[key]}%" if key == "progress" else obj[key]
            print(f"{key:12} {shown}")
    status = JobStatus(job.status)
    return jobs.exit_code(status) if status.is_final else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    job = jobs.cancel(_ctx(), args.job_id)
    print(f"{job.id} {job.status}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    _check_timeout(args)
    ctx = _ctx()
    done = jobs.retry(ctx, args.job_id, _enqueue_retry)
    total = len(done.job.render_request().lines)
    what = "every slot" if len(done.slots) == total else f"{len(done.slots)} slot(s) {done.slots}"
    print(f"{done.job.id} attempt {done.job.attempts}: rendering {what} again", file=sys.stderr)
    code = 0
    if args.wait:
        try:
            code = jobs.exit_code(_follow(ctx, args.job_id, args.timeout))
        except WaitTimeout as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = Exit.TIMEOUT
    if args.json:  # the job as it is now: after --wait, its final state
        now = jobs.Retried(ctx.store.get(args.job_id), done.slots)
        _print_json(jobs.retried(ctx, now).model_dump(mode="json"))
    return code


def cmd_jobs(args: argparse.Namespace) -> int:
    status = JobStatus(args.status) if args.status else None
    ctx = _ctx()
    found = ctx.store.list(status=status, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json({"jobs": [jobs.describe(ctx, j).model_dump(mode="json") for j in found]})
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
    if not 0 < window <= 366 * 86400:  # as GET /stats?window_hours (0 < hours <= 24 x 366)
        raise RequestInvalid(f"--window {args.window!r}: expected more than 0, at most 366d", field="window")
    out = job_stats.summarize(_ctx(), window_s=window, queues=depths(settings)).model_dump(mode="json")
    if args.json:
        _print_json(out)
        return 0
    print("jobs by status: " + ", ".join(f"{k} {v}" for k, v in out["jobs_by_status"].items()))
    ended = ", ".join(f"{k} {v}" for k, v in (out["ended_in_window"] or {}).items()) or "none"
    print(f"over the last {args.window}: ended {ended}")
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
    if out["queues_error"]:
        print(f"queues: {out['queues_error']}")
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
    ctx = _ctx()
    removed = retention.cleanup(ctx, age, keep_outputs=args.keep_outputs, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for r in removed:
        what = "work files" if args.keep_outputs else "work files, outputs and record"
        print(f"{r.job_id} ({r.status}, ended {r.finished_at}): {verb} {what}, {r.bytes} bytes")
    total = sum(r.bytes for r in removed)
    print(f"{len(removed)} job(s), {total} bytes {verb}; running jobs are never touched")
    if not args.dry_run:  # this host's scratch of jobs removed elsewhere (retention runs on one host)
        for job_id in retention.remove_orphan_scratch(ctx):
            print(f"{job_id}: removed this host's scratch (its job's record is gone)")
    return 0


def _check_storage(settings: Settings) -> None:
    """Refuse to start (StorageError naming the problem) when the store cannot be used; then abort
    the multipart uploads a lost worker left behind."""
    from pipeline import reconcile

    ctx = Context(settings)
    ctx.storage.check()
    try:
        reconcile.abort_lost_uploads(ctx)
    except Exception as exc:  # noqa: BLE001 - the sweeper tries again; the worker can start
        structlog.get_logger("clipline.worker").warning("storage.abort_failed", error=str(exc))


def _preflight(settings: Settings) -> None:
    """What a worker needs before it takes a message: the database at the code's schema, Redis, the broker.
    Raises what the first missing one raised (exit 3, naming it)."""
    from urllib.parse import unquote, urlsplit

    from actors.queues import BROKER_ERRORS, QueueNeedsMigration, check_broker

    ctx = Context(settings)
    ctx.store  # noqa: B018 - opening the store checks the schema revision
    ctx.redis.ping()
    try:
        check_broker(settings)
    except QueueNeedsMigration as exc:
        raise exits.Unavailable("broker", str(exc)) from exc
    except BROKER_ERRORS as exc:
        url = urlsplit(settings.broker_url)
        where = f"{url.hostname}:{url.port or 5672} vhost {unquote(url.path[1:]) or '/'}"
        raise exits.Unavailable("broker", f"no AMQP connection to {where} ({exc!r})") from exc


def cmd_worker(args: argparse.Namespace) -> int:
    from . import worker

    settings = get_settings()
    stages = tuple(Stage) if args.stage == "all" else (Stage(args.stage),)
    if worker.NEEDS_FFMPEG.intersection(stages):
        settings.ffmpeg_path()
        settings.ffprobe_path()
    _preflight(settings)
    if worker.NEEDS_FFMPEG.intersection(stages):  # the stages that read or write clips and results
        _check_storage(settings)
    from .metrics_server import DeliveryCollector, MetricsServer
    from .sweeper import OrphanSweeper, Sweeper

    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    collectors = [DeliveryCollector(settings.database_url)] if Stage.ASSEMBLE in stages else []
    metrics = MetricsServer(port, collectors=collectors) if port else None
    sweeper: Sweeper | OrphanSweeper | None = None
    if Stage.ASSEMBLE in stages:
        sweeper = Sweeper(settings)
    elif worker.NEEDS_FFMPEG.intersection(stages):  # cuts into this host's scratch: sweeps it too
        sweeper = OrphanSweeper(settings)
    try:
        if metrics is not None:
            metrics.start()
        if sweeper is not None:
            sweeper.start()
        commands = worker.plan_commands(
            settings,
            args.stage,
            args.concurrency,
            args.processes,
            metrics.env() if metrics else None,
            shutdown_timeout=args.shutdown_timeout,
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
    from sqlalchemy.exc import OperationalError

    from .api import serve

    settings = get_settings()
    try:
        Context(settings).store  # noqa: B018 - an older schema is refused at start, as workers do
    except OperationalError:
        pass  # the database is down: the API starts anyway and /readyz says so until it is back
    return serve(settings, args.host, args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from .dev import demo

    return demo.main(lines=args.lines, concurrency=args.concurrency, s3=args.s3)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error under --json is one JSON object on stdout too (exit 2)."""

    def error(self, message: str) -> NoReturn:
        if "--json" in sys.argv[1:]:
            failure = exits.Failure(Exit.INVALID, "usage", f"{self.prog}: {message}")
            print(json.dumps(failure.as_json()), flush=True)
        super().error(message)


def _version() -> str:
    from pipeline import schema

    try:
        number = version("clipline")
    except PackageNotFoundError:  # running from a checkout that was never installed
        number = "unknown"
    return f"clipline {number} (database schema revision {schema.head()})"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="clipline",
        description=__doc__,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=kw.pop("description", help), **kw)

    w = command(
        "worker",
        "run stage workers until SIGTERM",
        description="Run stage workers until SIGTERM: each stage is its own dramatiq command on its own "
        "queue with its own cap. Several worker commands on one host need one metrics port each "
        "(--metrics-port).",
    )
    w.add_argument("--stage", choices=[*(s.value for s in Stage), "all"], default="all")
    w.add_argument(
        "--concurrency", type=_int_in(1), help="clip cap, 1 or more (default RENDER_CLIP_CONCURRENCY)"
    )
    w.add_argument("--processes", type=_int_in(1), default=1, help="worker processes per stage")
    w.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="on SIGTERM, how long running messages may finish before they are killed "
        "(default: each stage's longest run plus 60 s; the clip stage: CLIPLINE_FFMPEG_TIMEOUT_S + 60)",
    )
    w.add_argument(
        "--metrics-port",
        type=_int_in(0, 65535),
        help="Prometheus port of this command (default CLIPLINE_METRICS_PORT, 9191; 0: off); "
        "each worker command on a host needs its own",
    )
    w.set_defaults(func=cmd_worker)

    s = command(
        "submit",
        "submit a render request",
        description="Submit a render request and print its job id (the request's job_id is the "
        "idempotency key: the same request again never renders twice).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("file", metavar="REQUEST.json", help="the render request (a JSON object); - reads stdin")
    s.add_argument("--wait", action="store_true", help="follow the job until it is final")
    s.add_argument(
        "--timeout", type=float, metavar="S", help="with --wait: give up waiting after S seconds (exit 4)"
    )
    s.add_argument("--json", action="store_true", help="end with one JSON object on stdout")
    s.set_defaults(func=cmd_submit)

    st = command(
        "status", "show a job", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    st.add_argument("job_id")
    st.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    st.add_argument("--watch", action="store_true", help="follow the job until it is final")
    st.set_defaults(func=cmd_status)

    k = command("cancel", "cancel a job that has not ended")
    k.add_argument("job_id")
    k.set_defaults(func=cmd_cancel)

    rt = command("retry", "render a job's missing footage again (FAILED/CANCELLED: all of it)")
    rt.add_argument("job_id")
    rt.add_argument("--wait", action="store_true", help="follow the job until it is final")
    rt.add_argument(
        "--timeout", type=float, metavar="S", help="with --wait: give up waiting after S seconds (exit 4)"
    )
    rt.add_argument("--json", action="store_true", help="end with one JSON object on stdout")
    rt.set_defaults(func=cmd_retry)

    j = command("jobs", "list jobs, newest first")
    j.add_argument("--status", choices=[s.value for s in JobStatus], type=str.upper)
    j.add_argument("--limit", type=_int_in(1, 500), default=20, help="1 to 500, as GET /jobs (default 20)")
    j.add_argument("--offset", type=_int_in(0), default=0)
    j.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    j.set_defaults(func=cmd_jobs)

    sa = command("stats", "jobs by status, queue depths, success rate, durations")
    sa.add_argument("--window", default="24h", help="look back this far: 90m, 24h, 7d (default 24h)")
    sa.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sa.set_defaults(func=cmd_stats)

    cl = command("cleanup", "remove finished jobs older than an age (never a running job)")
    cl.add_argument("--older-than", required=True, help="age like 24h, 7d, 90m")
    cl.add_argument("--keep-outputs", action="store_true", help="remove work files only")
    cl.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    cl.set_defaults(func=cmd_cleanup)

    c = command("config", "read or change live settings (no restart needed)")
    c.add_argument("action", choices=["get", "set", "unset", "list"])
    c.add_argument("key", nargs="?")
    c.add_argument("value", nargs="?")
    c.set_defaults(func=cmd_config)

    r = command("reconcile", "repair unfinished jobs whose coordination state was lost")
    r.add_argument(
        "--stale-after", type=float, help="seconds without progress (default CLIPLINE_RECONCILE_AFTER_S)"
    )
    r.set_defaults(func=cmd_reconcile)

    cli_dlq.add_parser(sub)
    cli_db.add_parser(sub)
    cli_queues.add_parser(sub)

    a = command("api", "serve the HTTP API")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=_int_in(1, 65535), default=8080)
    a.set_defaults(func=cmd_api)

    d = command("demo", "render a 60-line sample job end to end on this machine")
    d.add_argument("--lines", type=int, default=60)
    d.add_argument("--concurrency", type=int, default=None)
    d.add_argument("--s3", action="store_true", help="clips and results in a loopback S3 server (moto)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    from pipeline import logs

    try:
        logs.configure(get_settings().log_level)
        # A broker that is down is reported once, as this command's error, not as pika's log lines.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
        return int(args.func(args))
    except KeyboardInterrupt:  # under --json the last stdout line is still one JSON object
        stopped = exits.Failure(Exit.INTERRUPTED, "interrupted", "interrupted (Ctrl-C)")
        return exits.report(stopped, as_json=as_json)
    except Exception as exc:
        failure = exits.classify(exc)
        if failure is None:  # a bug: the traceback goes to stderr, the JSON contract still holds
            if as_json:
                bug = exits.Failure(Exit.FAILED, "internal_error", f"{type(exc).__name__}: {exc}")
                print(json.dumps(bug.as_json()), flush=True)
            raise
        return exits.report(failure, as_json=as_json)


if __name__ == "__main__":
    sys.exit(main())
