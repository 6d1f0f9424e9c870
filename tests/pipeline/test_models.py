"""Request validation at the edge: every rule of DESIGN.md, each error naming its field."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

import pytest

from pipeline.errors import RequestInvalid
from pipeline.models import METADATA_MAX_BYTES, parse_request


def line(start: int, end: int, video: str = "v1", cs: int = 0, ce: int = 1000, **clip: Any) -> dict[str, Any]:
    return {
        "text": "歌词",
        "start_ms": start,
        "end_ms": end,
        "clip": {"video_id": video, "start_ms": cs, "end_ms": ce, **clip},
    }


def request(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"job_id": "mix-1", "lines": [line(0, 1000), line(1000, 2500)]}
    base.update(over)
    return base


def field_of(data: Any, **kw: Any) -> str:
    with pytest.raises(RequestInvalid) as err:
        parse_request(data, **kw)
    assert err.value.field in str(err.value)
    return err.value.field


def test_minimal_request_gets_defaults_and_generated_ids() -> None:
    req = parse_request({"lines": [line(0, 1000)]})
    assert req.job_id.startswith("job-") and len(req.trace_id) == 16
    assert (req.output.width, req.output.height, req.output.fps) == (1280, 720, 30)
    assert req.audio is None


def test_design_example_is_valid() -> None:
    req = parse_request(
        {
            "job_id": "mix-20261122-0001",
            "mix_request_id": "req-778",
            "trace_id": "4bf92f3577b34da6",
            "output": {"width": 1280, "height": 720, "fps": 30},
            "audio": {"url": "http://cdn.example/songs/778.m4a"},
            "callback_url": "http://scheduler.internal/render-callbacks",
            "lines": [
                line(0, 3200, "v_91f", 61300, 64500),
                line(3200, 7050, "v_17a", 1000, 4850, hls_url="http://cdn.example/v_17a/index.m3u8"),
            ],
        }
    )
    assert req.distinct_videos() == {"v_91f": None, "v_17a": "http://cdn.example/v_17a/index.m3u8"}


@pytest.mark.parametrize("job_id", ["../etc", "a/b", "..", "", "-lead", "x" * 65, "a b", "ü"])
def test_ids_that_could_escape_a_directory_are_refused(job_id: str) -> None:
    assert field_of(request(job_id=job_id)) == "job_id"


@pytest.mark.parametrize("video_id", ["../x", "a/b", "a\\b", "."])
def test_video_ids_are_refused_too(video_id: str) -> None:
    assert field_of(request(lines=[line(0, 1000, video_id)])) == "lines[0].clip.video_id"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://h/x.m3u8", "gopher://h", "http://", "javascript:x"]
)
def test_non_http_urls_are_refused(url: str) -> None:
    assert field_of(request(lines=[line(0, 1000, hls_url=url)])) == "lines[0].clip.hls_url"
    assert field_of(request(audio={"url": url})) == "audio.url"
    assert field_of(request(callback_url=url)) == "callback_url"


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example:99999/a.m3u8",
        "http://cdn.example:-1/a.m3u8",
        "http://cdn.example/p\t.m3u8",
        "http://xn--abc.example/a.m3u8",
    ],
)
def test_urls_no_request_can_be_sent_to_are_refused(url: str) -> None:
    # urlsplit reads them (dropping a tab); the HTTP client would refuse them at the first request
    assert field_of(request(lines=[line(0, 1000, hls_url=url)])) == "lines[0].clip.hls_url"
    assert field_of(request(audio={"url": url})) == "audio.url"
    assert field_of(request(callback_url=url)) == "callback_url"


def test_one_video_id_with_two_playlists_is_refused_naming_the_second() -> None:
    # Given two lines of one video_id naming different playlists (the second would never be read:
    # a video's source is resolved once per job)
    a, b = "http://cdn.example/v_a/index.m3u8", "http://cdn.example/v_b/index.m3u8"
    lines = [line(0, 1000, "v", hls_url=a), line(1000, 2000, "v"), line(2000, 3000, "v", hls_url=b)]
    assert field_of(request(lines=lines)) == "lines[2].clip.hls_url"
    # while the same playlist signed differently per line is one playlist
    signed = [line(0, 1000, "v", hls_url=a + "?sig=1"), line(1000, 2000, "v", hls_url=a + "?sig=2")]
    assert parse_request(request(lines=signed)).distinct_videos() == {"v": a + "?sig=1"}


@pytest.mark.parametrize("field", ["mix_request_id", "audio.path"])
def test_control_characters_are_refused_in_stored_strings(field: str) -> None:
    # a NUL cannot be stored in PostgreSQL (a 500 before), nor open a file
    data = (
        request(mix_request_id="m\u0000x")
        if field == "mix_request_id"
        else request(audio={"path": "a\u0000.mp3"})
    )
    assert field_of(data) == field


def test_hosts_outside_the_allowlist_are_refused() -> None:
    data = request(lines=[line(0, 1000, hls_url="http://evil.example/a.m3u8")])
    assert field_of(data, allowed_hosts=frozenset({"cdn.example"})) == "lines[0].clip.hls_url"
    ok = request(lines=[line(0, 1000, hls_url="http://cdn.example/a.m3u8")])
    assert parse_request(ok, allowed_hosts=frozenset({"cdn.example"}))


def test_no_lines_and_too_many_lines() -> None:
    assert field_of(request(lines=[])) == "lines"
    many = [line(i * 100, i * 100 + 100) for i in range(10_000)]
    with pytest.raises(RequestInvalid, match="10000 lines is more than the maximum of 500"):
        parse_request(request(lines=many))


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([line(1000, 1000)], "lines[0].end_ms"),
        ([line(1000, 500)], "lines[0].end_ms"),
        ([line(0, 1000, cs=500, ce=500)], "lines[0].clip.end_ms"),
        ([line(0, 1000), line(900, 2000)], "lines[1].start_ms"),  # overlapping
        ([line(1000, 2000), line(0, 900)], "lines[1].start_ms"),  # out of order
        ([line(-5, 1000)], "lines[0].start_ms"),
        ([line(0, 10**12)], "lines[0].end_ms"),  # absurd
        ([line(0, 1000, ce=10**12)], "lines[0].clip.end_ms"),
        ([line(0, 1000, cs=-1)], "lines[0].clip.start_ms"),
        ([line(0, 10)], "lines[0]"),  # shorter than a frame at 30 fps: no frame for the slot
    ],
)
def test_time_rules(lines: list[dict[str, Any]], field: str) -> None:
    assert field_of(request(lines=lines)) == field


def test_audio_needs_exactly_one_source_and_a_safe_path() -> None:
    assert field_of(request(audio={})) == "audio"
    assert field_of(request(audio={"url": "http://a/b.m4a", "path": "b.m4a"})) == "audio"
    assert field_of(request(audio={"path": "../secret.m4a"})) == "audio.path"
    assert field_of(request(audio={"path": "/etc/passwd"})) == "audio.path"
    assert parse_request(request(audio={"path": "songs/778.m4a"})).audio is not None


def test_unknown_fields_and_bad_output_are_refused() -> None:
    assert field_of(request(colour="red")) == "colour"
    assert field_of(request(output={"width": 1281, "height": 720, "fps": 30})) == "output.width"
    assert field_of(request(output={"width": 1280, "height": 720, "fps": 0})) == "output.fps"
    assert field_of(["not", "an", "object"]) == "(body)"


def test_fingerprint_tracks_the_body() -> None:
    a = parse_request(request())
    b = parse_request(copy.deepcopy(request()))
    c = parse_request(request(lines=[line(0, 1000), line(1000, 2600)]))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    # The caller's metadata is part of the body; the schema version and trace id are not
    assert parse_request(request(metadata={"k": 1})).fingerprint() != a.fingerprint()
    assert parse_request(request(schema_version=1, trace_id="t-2")).fingerprint() == a.fingerprint()


def test_fingerprints_of_jobs_recorded_before_schema_version_and_metadata_still_match() -> None:
    # The hash as it was computed before the fields existed (a job recorded by an earlier release)
    req = parse_request(request())
    assert req.output.quality == "final"
    leave_out: Any = {"trace_id": True, "schema_version": True, "metadata": True, "output": {"quality"}}
    old_body = req.model_dump(mode="json", exclude=leave_out)
    old = hashlib.sha256(json.dumps(old_body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert req.fingerprint() == old
    # and a draft of the same body is another body
    assert parse_request(request(output={"quality": "draft"})).fingerprint() != old


def test_every_problem_is_listed_with_its_field_path() -> None:
    # Given a request with four independent mistakes
    data = request(job_id="../x", colour="red", lines=[line(1000, 1000), line(2000, 3000, "a/b")])
    # When it is validated, then each is named, none summarised as "and N more"
    with pytest.raises(RequestInvalid) as err:
        parse_request(data)
    fields = [p.field for p in err.value.problems]
    assert fields == ["job_id", "lines[0].end_ms", "lines[1].clip.video_id", "colour"]
    assert err.value.field == "job_id"
    assert all(f"{p.field}: {p.message}" in str(err.value) for p in err.value.problems)
    assert "more problem" not in str(err.value)


def test_every_overlap_and_every_slot_without_a_frame_is_listed() -> None:
    overlapping = [line(0, 1000), line(900, 2000), line(1500, 2500), line(2500, 2600, ce=10**12)]
    with pytest.raises(RequestInvalid) as err:
        parse_request(request(lines=overlapping))
    assert [p.field for p in err.value.problems] == [
        "lines[1].start_ms",
        "lines[2].start_ms",
        "lines[3].clip.end_ms",
    ]
    with pytest.raises(RequestInvalid) as err:
        parse_request(request(lines=[line(0, 10), line(10, 1000), line(1000, 1010)]))
    assert [p.field for p in err.value.problems] == ["lines[0]", "lines[2]"]


def test_schema_version_is_1_and_nothing_else() -> None:
    assert parse_request(request()).schema_version == 1
    assert parse_request(request(schema_version=1)).schema_version == 1
    assert field_of(request(schema_version=2)) == "schema_version"
    assert field_of(request(schema_version="1")) == "schema_version"


def test_metadata_is_a_small_json_object() -> None:
    meta = {"tenant": "t-1", "tags": ["a", "b"], "nested": {"n": 1.5, "ok": True, "none": None}}
    assert parse_request(request(metadata=meta)).metadata == meta
    assert field_of(request(metadata=["not", "an", "object"])) == "metadata"
    big = {"blob": "x" * METADATA_MAX_BYTES}
    with pytest.raises(RequestInvalid, match=f"more than the maximum of {METADATA_MAX_BYTES}"):
        parse_request(request(metadata=big))
    # a message body read by Python's JSON reader may hold NaN or Infinity, which JSON cannot carry back
    for odd in (math.nan, math.inf, -math.inf):
        assert field_of(request(metadata={"x": {"y": [odd]}})) == "metadata"


def test_null_job_id_and_trace_id_are_generated_like_absent_ones() -> None:
    req = parse_request(request(job_id=None, trace_id=None))
    assert req.job_id.startswith("job-") and len(req.trace_id) == 16


def test_the_lines_order_is_checked_even_when_a_line_has_its_own_problem() -> None:
    # Given an overlap between lines 0 and 1 and a bad video id on line 2
    lines = [line(0, 1000), line(500, 1500), line(1500, 2500, "a/b")]
    with pytest.raises(RequestInvalid) as err:
        parse_request(request(lines=lines))
    # Then both are named (pydantic alone stops before the cross-line check when a line is invalid)
    assert sorted(p.field for p in err.value.problems) == ["lines[1].start_ms", "lines[2].clip.video_id"]
    # A value that is not an integer is named once, by its own check, not by the order check
    with pytest.raises(RequestInvalid) as err:
        parse_request(request(lines=[line(0, 1000), line("soon", 1500)]))  # type: ignore[arg-type]
    assert [p.field for p in err.value.problems] == ["lines[1].start_ms"]


def test_output_quality_defaults_to_final_and_only_final_or_draft_is_accepted() -> None:
    assert parse_request(request()).output.quality == "final"
    draft = parse_request(request(output={"width": 640, "height": 360, "quality": "draft"}))
    assert draft.output.frame_size == (320, 180) and draft.output.fps == 30
    assert field_of(request(output={"quality": "preview"})) == "output.quality"
