"""A message on a stage queue that can never be processed: the publisher must learn, not only the DLQ.

An invalid ``render.plan`` message (a body that is not JSON or not a Dramatiq
message, a request that fails validation, arguments ``plan_render`` does not
take, an actor name no stage has) is still dead-lettered, and also:

- when it carries a job_id (a valid one, for a job not recorded yet), that job
  is recorded as FAILED with every problem named, so ``GET /jobs/{id}`` and
  ``clipline status`` say why;
- the job's ``callback_url`` (when it passes the request's URL rules) is
  called back with that FAILED state;
- ``clipline_invalid_messages_total{queue, reason}`` counts it;
- one log line (``message.rejected``) says what was wrong.

A later valid request with the same job_id replaces the FAILED record (its
next attempt), as if the invalid one had been refused at the door.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from . import webhooks
from .context import Context
from .errors import FieldProblem
from .models import ID_PATTERN
from .problems import load_json

log = structlog.get_logger("clipline.rejects")

#: How much of an undecodable body the log line shows.
HEAD_BYTES = 200
_JOB_ID_IN_TEXT = re.compile(r'"job_id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9_-]{0,63})"')
_CALLBACK_IN_TEXT = re.compile(r'"callback_url"\s*:\s*"(https?://[^"\\\s]{1,2000})"')
_ID = re.compile(ID_PATTERN)


class Reason(StrEnum):
    """Why a message was rejected: the ``reason`` label of the metric and the log line."""

    UNDECODABLE = "undecodable"  # not JSON, or not a Dramatiq message envelope
    INVALID_REQUEST = "invalid_request"  # the request failed validation
    BAD_ARGUMENTS = "bad_arguments"  # the actor does not take these arguments
    UNKNOWN_ACTOR = "unknown_actor"  # no actor of that name
    CONFLICT = "conflict"  # the job_id exists with another request body


@dataclass(frozen=True)
class Rejected:
    queue: str
    reason: Reason
    job_id: str | None  # the job the message named, if any
    recorded: bool  # a FAILED record was made for it (False: no job_id, or the job already exists)


def reject(
    ctx: Context,
    *,
    queue: str,
    reason: Reason,
    problems: list[FieldProblem],
    request: Any = None,
    raw: bytes | None = None,
    call_back_now: bool = True,
) -> Rejected:
    """Record, count, call back and log one rejected message. ``request`` is the message's request
    argument as decoded (any JSON value), ``raw`` the body when it could not be decoded at all.

    ``call_back_now``: make the first callback try at once (from a worker thread); otherwise it is
    queued for the workers' webhook pump (from a consumer thread, which must not wait on a receiver).
    """
    job_id = _job_id(request, raw)
    error = "request invalid: " + "; ".join(f"{p.field}: {p.message}" for p in problems)
    recorded = False
    if job_id is not None and reason != Reason.CONFLICT:
        body = request if isinstance(request, dict) else _found_in(raw or b"", job_id)
        recorded = ctx.store.record_invalid(job_id, body, error)
        if recorded:
            if call_back_now:
                webhooks.notify(ctx, job_id)
            else:
                webhooks.queue(ctx, job_id)
    ctx.observer.message_rejected(queue, reason.value)
    log.warning(
        "message.rejected",
        queue=queue,
        reason=reason.value,
        field=problems[0].field if problems else None,
        error=error,
        job_id=job_id,
        recorded=recorded,
        **({"body_head": raw[:HEAD_BYTES].decode("utf-8", "replace")} if raw is not None else {}),
    )
    return Rejected(queue, reason, job_id, recorded)


def _found_in(raw: bytes, job_id: str) -> dict[str, Any]:
    """What a body that is not JSON tells of its request: the job_id, and a callback URL if it names one
    (checked against the request's URL rules before it is called)."""
    match = _CALLBACK_IN_TEXT.search(raw.decode("utf-8", "replace"))
    return {"job_id": job_id, **({"callback_url": match.group(1)} if match else {})}


def _job_id(request: Any, raw: bytes | None) -> str | None:
    """The job_id a message names: the request's, else one found in a body that is not JSON."""
    if isinstance(request, dict):
        found = request.get("job_id")
        return found if isinstance(found, str) and _ID.match(found) else None
    if raw is not None:
        match = _JOB_ID_IN_TEXT.search(raw.decode("utf-8", "replace"))
        return match.group(1) if match else None
    return None


ENVELOPE_FIELDS = ("queue_name", "actor_name", "args", "kwargs", "options")
ENVELOPE_OPTIONAL = ("message_id", "message_timestamp")


def envelope_problems(data: Any) -> list[str]:
    """What keeps a decoded JSON value from being a Dramatiq message envelope (none: it is one)."""
    if not isinstance(data, dict):
        return [f"the body is a JSON {type(data).__name__}, not an object"]
    missing = [f for f in ENVELOPE_FIELDS if f not in data]
    extra = sorted(set(data) - set(ENVELOPE_FIELDS) - set(ENVELOPE_OPTIONAL))
    found = [f"missing {', '.join(missing)}"] if missing else []
    found += [f"unknown field(s) {', '.join(extra)}"] if extra else []
    for name, kind in (("args", list), ("kwargs", dict), ("options", dict)):
        if name in data and not isinstance(data[name], kind):
            found.append(f"{name} must be a JSON {'array' if kind is list else 'object'}")
    for name in ("queue_name", "actor_name"):
        if name in data and not isinstance(data[name], str):
            found.append(f"{name} must be a string")
    return found


def request_in(body: bytes) -> tuple[Any, str]:
    """What an undecodable body holds, for ``reject``: the request, when one can be found (the bare request
    published without its envelope, or an envelope with a bad field), and what is wrong with the body."""
    try:
        data = load_json(body)
    except ValueError as exc:  # not JSON, not UTF-8, NaN, nested too deep, an integer too long
        return None, f"not valid JSON: {exc}"
    problems = envelope_problems(data)
    if isinstance(data, dict) and "actor_name" not in data and ("lines" in data or "job_id" in data):
        return data, "a bare request: it must be the one argument of a Dramatiq message (docs/CONTRACTS.md)"
    args = data.get("args") if isinstance(data, dict) else None
    request = args[0] if isinstance(args, list) and args else None
    return request, "not a Dramatiq message: " + ("; ".join(problems) or "its fields do not make one")
