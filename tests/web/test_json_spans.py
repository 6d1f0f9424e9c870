"""Finding a validation error's field in the text a person pasted."""

from __future__ import annotations

import json

from clipline.web.json_spans import locate, spans

TEXT = json.dumps(
    {"job_id": "j", "lines": [{"text": "第一句 🎵", "start_ms": 0, "end_ms": 5, "clip": {"video_id": "v"}}]},
    indent=2,
    ensure_ascii=False,
)


def test_every_member_and_element_has_its_span() -> None:
    found = spans(TEXT)
    start, end = found["lines[0].clip.video_id"]
    assert TEXT[start:end] == '"video_id": "v"'
    start, end = found["lines[0]"]
    assert json.loads(TEXT[start:end])["end_ms"] == 5


def test_locate_gives_line_and_column_and_falls_back_to_the_parent() -> None:
    span = locate(TEXT, "lines[0].end_ms")
    assert span is not None and TEXT[span.start : span.end] == '"end_ms": 5'
    line = TEXT.splitlines()[span.line - 1]
    assert line[span.col - 1 :].startswith('"end_ms"')
    missing = locate(TEXT, "lines[0].clip.start_ms")  # not in the text: the object that lacks it
    assert missing is not None and TEXT[missing.start :].startswith('"clip"')
    assert locate(TEXT, None) is None and locate(TEXT, "output.fps") is None


def test_text_that_does_not_scan_has_no_spans() -> None:
    assert spans('{"a": [1, }') == {} and locate('{"a": tru}', "a") is None
