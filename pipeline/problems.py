"""From pydantic's validation errors to the field problems a caller can act on. Pure.

Every problem found is reported, each with its field path in the request's
own terms (``lines[3].clip.hls_url``), never "... and 1 more problem(s)".
A validator that checks many items at once (the lines' order, each slot's
frame) raises ``Problems`` so that each finding keeps its own path.
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
