"""``clipline dlq list|show|requeue|purge``: the messages each stage gave up on (``actors.deadletters``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.errors import RequestInvalid
from pipeline.settings import get_settings
from pipeline.stages import Stage

from .exits import Exit

STAGES = [s.value for s in Stage]


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    q = sub.add_parser(
        "dlq",
        help="dead letters: list, show, requeue or purge the messages a stage gave up on",
        description="Each stage's dead-letter queue (render.<stage>.XQ) holds the messages Dramatiq gave "
        "up on; RabbitMQ drops them after 7 days. requeue sends them back to their stage with their "
        "retries reset (the stages are idempotent); purge deletes them.",
    )
    actions = q.add_subparsers(dest="dlq_action", required=True)
    ls = actions.add_parser("list", help="dead letters per stage, oldest first")
    ls.add_argument("--stage", choices=STAGES, help="one stage (default: all four)")
    ls.add_argument("--limit", type=int, default=50, help="at most this many per stage (default 50)")
    show = actions.add_parser("show", help="one dead letter: its message, job, error and traceback")
    show.add_argument("message_id")
    show.add_argument("--stage", choices=STAGES, help="where to look (default: all four)")
    for name, what in (("requeue", "send back to its stage"), ("purge", "delete")):
        act = actions.add_parser(name, help=f"{what} dead letters of one stage (by id, or --all)")
        act.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID")
        act.add_argument("--stage", choices=STAGES, required=True)
        act.add_argument("--all", action="store_true", help=f"{what} every dead letter of the stage")
    for p in actions.choices.values():
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    q.set_defaults(func=cmd_dlq)


def _stages(args: argparse.Namespace) -> list[Stage]:
    return [Stage(args.stage)] if args.stage else list(Stage)


def _line(letter: Any) -> str:
    s = letter.summary()
    where = f"job {s['job_id']}" + (f" clip {s['clip_index']}" if s["clip_index"] is not None else "")
    return (
        f"  {s['message_id']}  {s['actor'] or '?'}  {where}  retries {s['retries']}  "
        f"dead since {s['dead_lettered_at'] or '-'}  {s['error'] or ''}".rstrip()
    )


def cmd_dlq(args: argparse.Namespace) -> int:
    from actors import deadletters, names

    settings = get_settings()
    if args.dlq_action == "list":
        found = {s: deadletters.browse(settings, s, limit=args.limit) for s in _stages(args)}
        counts = {s: deadletters.count(settings, s) for s in found}
        if args.json:
            out = {
                s.value: {"queue": names.dead_letter_queue(s), "count": counts[s]}
                | {"messages": [x.summary() for x in letters]}
                for s, letters in found.items()
            }
            print(json.dumps({"stages": out}, ensure_ascii=False), flush=True)
            return Exit.OK
        for s, letters in found.items():
            more = f" (showing {len(letters)})" if counts[s] > len(letters) else ""
            print(f"{names.dead_letter_queue(s)}: {counts[s]} dead letter(s){more}")
            for letter in letters:
                print(_line(letter))
        return Exit.OK
    if args.dlq_action == "show":
        for s in _stages(args):
            try:
                letter = deadletters.find(settings, s, args.message_id)
            except deadletters.DeadLetterNotFound:
                continue
            detail = letter.detail()
            if args.json:
                print(json.dumps(detail, ensure_ascii=False), flush=True)
            else:
                print(json.dumps({k: v for k, v in detail.items() if k != "traceback"}, indent=2))
                print(detail["traceback"] or "(no traceback kept: the actor refused the message at once)")
            return Exit.OK
        where = names.dead_letter_queue(Stage(args.stage)) if args.stage else "any dead-letter queue"
        raise RequestInvalid(f"no dead letter {args.message_id!r} in {where}", field="message_id")
    stage = Stage(args.stage)
    if bool(args.all) == bool(args.message_ids):
        raise RequestInvalid(f"dlq {args.dlq_action}: give MESSAGE_ID(s) or --all (one of them)", field="")
    ids = None if args.all else set(args.message_ids)
    action = deadletters.requeue if args.dlq_action == "requeue" else deadletters.purge
    try:
        done = action(settings, stage, ids)
    except deadletters.DeadLetterNotFound as exc:
        raise RequestInvalid(str(exc.args[0]), field="message_id") from exc
    verb = "requeued to " + names.QUEUE[stage] if args.dlq_action == "requeue" else "purged"
    if args.json:
        print(json.dumps({args.dlq_action: [x.summary() for x in done]}, ensure_ascii=False), flush=True)
    else:
        for letter in done:
            print(_line(letter))
        print(f"{len(done)} dead letter(s) {verb}")
    return Exit.OK
