"""``clipline db upgrade|current``: the job store's schema (Alembic migrations, ``pipeline.schema``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline import schema
from pipeline.settings import get_settings
from pipeline.store import new_engine

from .exits import Exit


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    d = sub.add_parser(
        "db",
        help="the job store's schema: upgrade it to this code's revision, or show where it is",
        description="upgrade: run the migrations CLIPLINE_DATABASE_URL lacks (safe to run again; "
        "workers refuse to start on an older schema). current: show the database's revision; "
        "exit 0 when it is the code's, 3 when it is not.",
    )
    d.add_argument("action", choices=["upgrade", "current"])
    d.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    d.set_defaults(func=cmd_db)


def _as_json(found: schema.SchemaState) -> dict[str, object]:
    return {"revision": found.current, "head": found.head, "state": found.kind}


def cmd_db(args: argparse.Namespace) -> int:
    engine = new_engine(get_settings().database_url)
    try:
        if args.action == "upgrade":
            before, after = schema.upgrade(engine)
            if args.json:
                print(json.dumps({"before": _as_json(before), "after": _as_json(after)}), flush=True)
            elif before.kind == "current":
                print(f"database schema already at revision {after.head}; nothing to do")
            else:
                print(f"database schema upgraded: was {before.describe()}; now at revision {after.current}")
            return Exit.OK
        found = schema.state(engine)
        if args.json:
            print(json.dumps(_as_json(found)), flush=True)
        else:
            hint = "" if found.kind == "current" else f"; run `{schema.UPGRADE_COMMAND}`"
            print(f"database schema {found.describe()}{hint if found.kind != 'newer' else ''}")
        return Exit.OK if found.kind == "current" else Exit.UNAVAILABLE
    finally:
        engine.dispose()
