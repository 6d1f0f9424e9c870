"""The submit form's work: read the pasted or uploaded text, submit it, or say what is wrong and where.

A problem is shown next to the field it names: the validation's field path is found in the text
the person sent (``json_spans``), so the page can quote that line with the message beside it and
select the field in the text box. The text is always given back, so nothing pasted is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipeline import jobs
from pipeline.context import Context
from pipeline.errors import JobConflict, RequestInvalid
from pipeline.problems import load_json

from .json_spans import Span, locate, position

#: Lines of the sent text quoted around a problem.
CONTEXT_LINES = 2


@dataclass(frozen=True)
class Problem:
    message: str  # already in the page's language, or the validator's own words (English)
    field: str | None = None  # the request's field path, e.g. lines[3].clip.end_ms
    span: Span | None = None  # where that field is in the text

    def js_start(self, text: str) -> int:
        """The span's start in UTF-16 code units, as the page's script counts in the text box."""
        return _utf16(text, self.span.start) if self.span else 0

    def js_end(self, text: str) -> int:
        return _utf16(text, self.span.end) if self.span else 0

    def excerpt(self, text: str) -> list[tuple[int, str, bool]]:
        """(line number, line, is the problem's line) around the problem's place in the text."""
        if self.span is None:
            return []
        # Lines as json_spans.position counts them: at "\n" only. str.splitlines() would also break at
        # U+2028, U+2029, U+0085 (legal raw inside a JSON string) and mark the wrong line.
        lines = normalise(text).split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the text's final line end starts no line of its own
        first = max(1, self.span.line - CONTEXT_LINES)
        last = min(len(lines), self.span.line + CONTEXT_LINES)
        return [(n, lines[n - 1], n == self.span.line) for n in range(first, last + 1)]


@dataclass
class Outcome:
    text: str
    job_id: str | None = None  # set when the job was recorded (new, or the same one again)
    problems: list[Problem] = field(default_factory=list)


def _each(exc: RequestInvalid) -> list[tuple[str | None, str]]:
    """Every problem of a failed validation as (field path or None for the whole body, message)."""
    return [(None if p.field == "(body)" else p.field, p.message) for p in exc.problems]


def _utf16(text: str, offset: int) -> int:
    return len(text[:offset].encode("utf-16-le")) // 2


def normalise(text: str) -> str:
    """Line ends as a browser's text box holds them (a form sends CRLF), so offsets match the page's."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode(data: bytes) -> str:
    """An uploaded file's text: UTF-8 (a BOM is dropped); undecodable bytes are replaced, not fatal."""
    return data.decode("utf-8-sig", errors="replace")


def submit_text(ctx: Context, text: str, enqueue: jobs.Enqueue, *, labels: dict[str, str]) -> Outcome:
    """Parse and submit ``text``. ``labels`` holds the page's wording for the form's own problems."""
    text = normalise(text)
    out = Outcome(text)
    if not text.strip():
        out.problems.append(Problem(labels["empty"]))
        return out
    limit = ctx.settings.api_max_body_bytes
    if len(text.encode("utf-8")) > limit:
        out.problems.append(Problem(labels["big"].format(n=limit)))
        return out
    try:
        raw = load_json(text)  # the API's strict reader: what POST /jobs refuses, the form refuses alike
    except json.JSONDecodeError as exc:
        start = min(exc.pos, len(text))
        span = Span(start, min(len(text), start + 1), *position(text, start))
        out.problems.append(Problem(labels["json"].format(msg=exc.msg), span=span))
        return out
    except ValueError as exc:  # NaN, nested too deep, an integer of too many digits
        out.problems.append(Problem(labels["json"].format(msg=str(exc))))
        return out
    try:
        done = jobs.submit(ctx, raw, enqueue)
    except RequestInvalid as exc:
        out.problems.extend(Problem(msg, field=name, span=locate(text, name)) for name, msg in _each(exc))
        return out
    except JobConflict as exc:
        out.problems.append(Problem(str(exc), field="job_id", span=locate(text, "job_id")))
        return out
    out.job_id = done.job.id
    return out
