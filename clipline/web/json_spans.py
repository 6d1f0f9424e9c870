"""Where each field of a JSON text is: field path (``lines[3].clip.hls_url``) -> character span.

The submit form shows a validation error next to the field it names, in the text a person pasted:
json.loads keeps no positions, so this small scanner walks the (already valid) text once and
records where every member and array element starts and ends. Paths use the validation's own
spelling (``pipeline.models._field_path``): ``a.b``, ``a[0].b``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]  # public since 2.6, not in typeshed

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


@dataclass(frozen=True)
class Span:
    start: int  # offset of the member's key (or the element's value)
    end: int  # offset just past its value
    line: int  # 1-based line of ``start``
    col: int  # 1-based column of ``start``


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.spans: dict[str, tuple[int, int]] = {}

    def ws(self, i: int) -> int:
        m = _WS.match(self.text, i)
        return m.end() if m else i

    def value(self, i: int, path: str) -> int:
        i = self.ws(i)
        ch = self.text[i : i + 1]
        if ch == "{":
            return self.obj(i + 1, path)
        if ch == "[":
            return self.arr(i + 1, path)
        if ch == '"':
            return int(scanstring(self.text, i + 1)[1])
        m = _SCALAR.match(self.text, i)
        if not m:
            raise ValueError(f"unexpected {ch!r} at {i}")
        return m.end()

    def obj(self, i: int, path: str) -> int:
        i = self.ws(i)
        if self.text[i : i + 1] == "}":
            return i + 1
        while True:
            i = self.ws(i)
            key_start = i
            key, i = scanstring(self.text, i + 1)
            i = self.ws(i)
            if self.text[i : i + 1] != ":":
                raise ValueError(f"expected ':' at {i}")
            child = f"{path}.{key}" if path else key
            end = self.value(i + 1, child)
            self.spans.setdefault(child, (key_start, end))
            i = self.ws(end)
            if self.text[i : i + 1] == ",":
                i += 1
                continue
            if self.text[i : i + 1] == "}":
                return i + 1
            raise ValueError(f"expected ',' or '}}' at {i}")

    def arr(self, i: int, path: str) -> int:
        i = self.ws(i)
        if self.text[i : i + 1] == "]":
            return i + 1
        n = 0
        while True:
            start = self.ws(i)
            end = self.value(start, f"{path}[{n}]")
            self.spans.setdefault(f"{path}[{n}]", (start, end))
            n += 1
            i = self.ws(end)
            if self.text[i : i + 1] == ",":
                i += 1
                continue
            if self.text[i : i + 1] == "]":
                return i + 1
            raise ValueError(f"expected ',' or ']' at {i}")


def spans(text: str) -> dict[str, tuple[int, int]]:
    """Every field path of a valid JSON text -> (start, end); {} when the text does not scan."""
    scanner = _Scanner(text)
    try:
        scanner.value(0, "")
    except (ValueError, IndexError, json.JSONDecodeError, RecursionError):
        return {}  # RecursionError: nested deeper than the scanner goes; problems are shown without a place
    return scanner.spans


def _parent(path: str) -> str:
    """``a[1].b`` -> ``a[1]`` -> ``a`` -> ''."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def locate(text: str, field: str | None) -> Span | None:
    """The span of ``field`` in ``text``, or of its nearest parent that is there (a missing field is
    reported at the object that lacks it); None for the body as a whole or an unscannable text."""
    found = spans(text)
    path = (field or "").strip()
    while path and path not in found:
        path = _parent(path)
    if not path:
        return None
    start, end = found[path]
    return Span(start, end, *position(text, start))
