"""What is wrong with a request, as field problems a caller can act on. Pure.

Every problem found is reported, each with its field path in the request's
own terms (``lines[3].clip.hls_url``), never "... and 1 more problem(s)".
A validator that checks many items at once (the lines' order, each slot's
frame) raises ``Problems`` so that each finding keeps its own path. The lines'
order and times (``timeline_problems``) are also checked on the raw lines when
a line fails its own validation, which stops pydantic before that check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from .errors import FieldProblem

Loc = tuple[str | int, ...]


class Problems(ValueError):
    """Raised by a validator: several problems, each at a path under the value it validated."""

    def __init__(self, found: Sequence[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(f"{field_path(loc)}: {msg}" for loc, msg in found))
        self.found = list(found)


def field_path(loc: Sequence[Any]) -> str:
    """``("lines", 3, "clip", "hls_url")`` -> ``lines[3].clip.hls_url``; the empty path is ``(body)``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def problems_of(exc: ValidationError) -> list[FieldProblem]:
    """Every problem of a pydantic ValidationError, in the order pydantic found them."""
    out: list[FieldProblem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            out.extend(FieldProblem(field_path(loc + sub), msg) for sub, msg in cause.found)
        else:
            out.append(FieldProblem(field_path(loc), str(err["msg"]).removeprefix("Value error, ")))
    return out


def url_problem(value: str, allowed_hosts: frozenset[str] = frozenset()) -> str | None:
    """What is wrong with a URL clipline would fetch or call, or None: http(s), a host, in the allowlist."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return f"URL scheme must be http or https, got {parts.scheme or 'none'!r}"
    if not parts.hostname:
        return "URL has no host"
    if allowed_hosts and parts.hostname.lower() not in allowed_hosts:
        return f"host {parts.hostname!r} is not in CLIPLINE_ALLOWED_HOSTS"
    return None


def timeline_problems(lines: list[Any], max_ms: int) -> list[tuple[Loc, str]]:
    """Times past ``max_ms`` and lines out of order or overlapping, found in lines as dicts (validated or
    raw: a value that is not an integer is skipped here, its own check names it)."""

    def ms(line: Any, *path: str) -> int | None:
        for key in path:
            line = line.get(key) if isinstance(line, dict) else None
        return line if isinstance(line, int) and not isinstance(line, bool) else None

    found: list[tuple[Loc, str]] = []
    previous_end: tuple[int, int] | None = None  # (index, end_ms) of the last line with an end
    for i, line in enumerate(lines):
        ends = (((i, "end_ms"), ms(line, "end_ms")), ((i, "clip", "end_ms"), ms(line, "clip", "end_ms")))
        for loc, value in ends:
            if value is not None and value > max_ms:
                found.append((loc, f"{value} is past the maximum of {max_ms} ms (CLIPLINE_MAX_TIME_MS)"))
        start = ms(line, "start_ms")
        if start is not None and previous_end is not None and start < previous_end[1]:
            msg = f"starts at {start} ms, before lines[{previous_end[0]}] ends at {previous_end[1]} ms"
            found.append(((i, "start_ms"), msg + ": lines must be in order and must not overlap"))
        end = ms(line, "end_ms")
        previous_end = (i, end) if end is not None else previous_end
    return found
