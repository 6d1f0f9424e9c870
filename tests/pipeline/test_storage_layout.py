"""Storage keys come only from validated ids; uploads to abort are chosen by a pure rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.storage import Upload, layout
from pipeline.storage.uploads import lost


def test_keys_of_a_job() -> None:
    assert layout.clip("job-1", 7) == "work/job-1/clips/0007.mp4"
    assert layout.clip_record("job-1", 7) == "work/job-1/clips/0007.json"
    assert layout.clip_logged("job-1", 7) == "work/job-1/clips/0007.logged"
    assert layout.output("job-1", layout.FINAL) == "output/job-1/final.mp4"
    assert (
        layout.output("job-1", layout.attempt_name(layout.REPORT, 2)) == "output/job-1/report.attempt-2.json"
    )
    assert layout.job_work("job-1") == "work/job-1/" and layout.job_output("job-1") == "output/job-1/"


@pytest.mark.parametrize("job_id", ["../etc", "a/b", "", "-x", "a" * 65, "j\n1", "ünï"])
def test_no_key_from_a_bad_job_id(job_id: str) -> None:
    with pytest.raises(ValueError, match="not a valid id"):
        layout.clip(job_id, 0)
    with pytest.raises(ValueError, match="not a valid id"):
        layout.output(job_id, layout.FINAL)


@pytest.mark.parametrize(
    "name", ["../final.mp4", "final.mp4/x", "other.mp4", "final.exe", "report.attempt-x.json"]
)
def test_no_key_from_a_bad_result_name(name: str) -> None:
    with pytest.raises(ValueError, match="not a result name"):
        layout.output("job-1", name)


@pytest.mark.parametrize("index", [-1, 100_000, True, "3"])
def test_no_key_from_a_bad_index(index: object) -> None:
    with pytest.raises(ValueError, match="not a slot number"):
        layout.clip("job-1", index)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["etc/passwd", "work/", "work/../x", "/work/j", "output//x"])
def test_split_refuses_keys_outside_the_areas(key: str) -> None:
    with pytest.raises(ValueError):
        layout.split(key)


def test_content_types() -> None:
    assert layout.content_type("output/j/final.mp4") == "video/mp4"
    assert layout.content_type("output/j/poster.jpg") == "image/jpeg"
    assert layout.content_type("output/j/report.json") == "application/json"


def test_job_of() -> None:
    assert layout.job_of("work/j-1/clips/0001.mp4") == "j-1"
    assert layout.job_of("output/j-2/final.mp4") == "j-2"
    assert layout.job_of(".probe/x") is None


def test_lost_uploads_are_those_of_ended_jobs_or_too_old() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    fresh, old = now - timedelta(minutes=5), now - timedelta(hours=7)
    ups = [
        Upload("work/running/clips/0001.mp4", "u1", fresh),
        Upload("work/ended/clips/0002.mp4", "u2", fresh),
        Upload("output/running/final.mp4", "u3", old),
        Upload("work/running/clips/0003.mp4", "u4", None),
    ]
    ended = {"ended"}
    got = lost(ups, lambda j: j in ended, older_than_s=6 * 3600, now=now)
    assert [(a.upload.upload_id, a.why) for a in got] == [
        ("u2", "job ended has ended"),
        ("u3", "started more than 21600 s ago"),
    ]
    # 0: never by age, only by the job's end
    got = lost(ups, lambda j: j in ended, older_than_s=0, now=now)
    assert [a.upload.upload_id for a in got] == ["u2"]
