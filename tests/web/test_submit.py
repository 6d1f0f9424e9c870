"""The submit form's problems: every validation error, with its field and place in the text."""

from __future__ import annotations

import json

import pytest

from clipline.web.json_spans import locate
from clipline.web.submit import Problem, _each, normalise
from pipeline.errors import RequestInvalid
from pipeline.models import parse_request


def test_every_validation_problem_is_listed_with_its_field() -> None:
    body = {
        "job_id": "bad id",
        "lines": [
            {"text": "a", "start_ms": 0, "end_ms": 10, "clip": {"video_id": "v", "start_ms": 5, "end_ms": 1}}
        ],
    }
    with pytest.raises(RequestInvalid) as caught:
        parse_request(body)
    problems = dict(_each(caught.value))
    assert set(problems) == {"job_id", "lines[0].clip.end_ms"}
    assert "pattern" in problems["job_id"]
    assert "must be greater than start_ms" in problems["lines[0].clip.end_ms"]
    assert not any(m.startswith("Value error") for m in problems.values())


def test_a_problem_without_a_validation_cause_keeps_its_field_once() -> None:
    exc = RequestInvalid("lines: 600 lines is more than the maximum of 500", field="lines")
    assert _each(exc) == [("lines", "600 lines is more than the maximum of 500")]
    assert _each(RequestInvalid("(body): the request must be a JSON object", field="(body)")) == [
        (None, "the request must be a JSON object")
    ]


def test_excerpt_and_offsets_match_the_text_box() -> None:
    text = normalise(json.dumps({"a": "🎵", "b": 1}, indent=2, ensure_ascii=False).replace("\n", "\r\n"))
    assert "\r" not in text
    problem = Problem("bad", field="b", span=locate(text, "b"))
    assert [row[2] for row in problem.excerpt(text)] == [False, False, True, False]
    # The emoji before "b" is two UTF-16 units: the script's selection counts it so
    assert problem.js_start(text) == len(text[: problem.span.start].encode("utf-16-le")) // 2  # type: ignore[union-attr]
    assert problem.js_start(text) == text.index('"b"') + 1
