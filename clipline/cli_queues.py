"""``clipline queues check|migrate``: the stage queues' arguments (``x-max-priority``, ``actors.migrate``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.settings import get_settings

from .exits import Exit


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    q = sub.add_parser(
        "queues",
        help="check or migrate the stage queues' arguments",
        description="The stage queues are priority queues (x-max-priority). A queue declared by an older "
        "clipline has other arguments and RabbitMQ cannot change them: `migrate` moves its messages "
        "aside, declares it again and moves them back. Stop the workers first (a queue with consumers "
        "is refused).",
    )
    actions = q.add_subparsers(dest="queues_action", required=True)
    actions.add_parser("check", help="which queues need migrating (exit 1 if any)")
    m = actions.add_parser("migrate", help="re-declare every queue that needs it, keeping its messages")
    m.add_argument("--dry-run", action="store_true", help="only say which queues would be migrated")
    for p in actions.choices.values():
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    q.set_defaults(func=cmd_queues)


def cmd_queues(args: argparse.Namespace) -> int:
    from actors import migrate

    dry_run = args.queues_action == "check" or args.dry_run
    rows = migrate.migrate(get_settings(), dry_run=dry_run)
    pending = [r.queue for r in rows if r.state == "old" and not r.done]
    if args.json:
        print(json.dumps({"queues": [r.__dict__ for r in rows], "needs_migration": pending}), flush=True)
    else:
        for r in rows:
            what = f"migrated, {r.moved} message(s) kept" if r.done else _STATE[r.state]
            print(f"{r.queue}: {what}")
    if args.queues_action == "check" and pending:
        return Exit.FAILED
    return Exit.OK


_STATE = {
    "absent": "not declared yet (the workers declare it)",
    "ok": "up to date",
    "old": "needs migrating: run `clipline queues migrate` with the stage's workers stopped",
}
