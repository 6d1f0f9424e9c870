"""What is wrong with a request, as field problems a caller can act on. Pure.

Every problem found is reported, each with its field path in the request's
own terms (``lines[3].clip.hls_url``), never "... and 1 more problem(s)".
A validator that checks many items at once (the lines' order, each slot's
frame) raises ``Problems`` so that each finding keeps its own path. The lines'
order and times (``timeline_problems``) are also checked on the raw lines when
a line fails its own validation, which stops pydantic before that check.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
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


def load_json(raw: str | bytes) -> Any:
    """A request's JSON text, read strictly. Raises ValueError (``json.JSONDecodeError`` for text that is
    not JSON) naming what else is wrong: ``NaN`` or ``Infinity`` (not JSON), a number too large for a
    double (not kept as infinity), nesting deeper than the reader goes, an integer of more digits than
    Python converts, a key given twice in one object (which value was meant is unknown)."""
    try:
        return json.loads(raw, parse_constant=_not_json, parse_float=_finite, object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise ValueError("the JSON is nested too deep to read") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"the key {key[:80]!r} is given twice in one object")
        obj[key] = value
    return obj


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a double")
    return value


def url_problem(value: str, allowed_hosts: frozenset[str] = frozenset()) -> str | None:
    """What is wrong with a URL clipline would fetch or call, or None: http(s), a host, in the allowlist,
    and nothing ``url_syntax_problem`` finds."""
    if problem := url_syntax_problem(value):
        return problem
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return f"URL scheme must be http or https, got {parts.scheme or 'none'!r}"
    if not parts.hostname:
        return "URL has no host"
    if allowed_hosts and parts.hostname.lower() not in allowed_hosts:
        return f"host {parts.hostname!r} is not in CLIPLINE_ALLOWED_HOSTS"
    return None


def url_syntax_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a URL to send a request to, or None: a control character
    (``urlsplit`` silently drops a tab or newline, the HTTP client refuses it), a port that is not a
    number from 1 to 65535, a host or path the HTTP client cannot encode (an invalid IDNA label)."""
    if bad := CONTROL_CHARS.search(value):
        return f"URL contains the control character {bad.group()!r}"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, an unclosed IPv6 bracket
        return f"URL cannot be parsed ({exc})"
    if port == 0:
        return "URL has port 0"
    host = parts.hostname or ""
    if not host.isascii() or "xn--" in host:  # only an IDNA host can fail to encode: checked then
        try:
            httpx.URL(value).host  # noqa: B018 - decoding the host is the check (what a request does)
        except (httpx.InvalidURL, ValueError) as exc:  # IDNA errors are ValueErrors
            return f"URL cannot be encoded ({type(exc).__name__}: {exc})"
    return None


#: ASCII control characters: never in a URL, an id or a path a request names.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


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
