"""RenderJob records on SQLite and on the machine's PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.errors import JobConflict, JobNotFound
from pipeline.models import JobStatus, parse_request
from pipeline.store import JobAttempt, JobStore
from pipeline.tables import ATTEMPT_MARK

from .pg import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        yield JobStore(f"sqlite:///{tmp_path}/jobs.db")
        return
    with fresh_database("clipline_test") as url:
        s = JobStore(url)
        yield s
        s.engine.dispose()


def req(job_id: str = "job-1", end: int = 1000):  # type: ignore[no-untyped-def]
    return parse_request(
        {
            "job_id": job_id,
            "mix_request_id": "req-9",
            "lines": [
                {
                    "text": "a",
                    "start_ms": 0,
                    "end_ms": end,
                    "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000},
                }
            ],
        }
    )


def test_create_is_idempotent_and_conflicts_on_another_body(store: JobStore) -> None:
    job, created = store.create_or_get(req())
    assert created and job.status == "PENDING" and job.progress == 0 and job.mix_request_id == "req-9"
    again, created = store.create_or_get(req())
    assert not created and again.id == job.id
    with pytest.raises(JobConflict, match="different request body"):
        store.create_or_get(req(end=2000))
    with pytest.raises(JobNotFound):
        store.get("nope")


def test_five_concurrent_submissions_make_one_record(store: JobStore) -> None:
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: store.create_or_get(req("same")), range(5)))
    assert sum(created for _, created in results) == 1
    assert {j.id for j, _ in results} == {"same"}


def test_progress_never_goes_back_and_final_states_stick(store: JobStore) -> None:
    store.create_or_get(req())
    assert store.advance("job-1", status=JobStatus.EXTRACTING, progress=40, error="clip 3 failed: 404")
    assert store.advance("job-1", progress=10)
    job = store.get("job-1")
    assert (job.status, job.progress) == ("EXTRACTING", 40)
    # A compare-and-set from a state the job is not in changes nothing.
    assert not store.advance("job-1", status=JobStatus.PLANNING, only_from=frozenset({JobStatus.PENDING}))
    assert store.advance(
        "job-1", status=JobStatus.COMPLETED, metrics={"render": {"clip_stats": {"total": 1}}}
    )
    assert not store.advance("job-1", status=JobStatus.FAILED)
    job = store.get("job-1")
    assert (job.status, job.progress) == ("COMPLETED", 100)
    assert job.finished_at is not None and job.metrics["render"]["clip_stats"]["total"] == 1
    assert "clip 3 failed: 404" in job.error_log
    assert job.render_request().job_id == "job-1"


def test_list_newest_first(store: JobStore) -> None:
    for i in range(3):
        store.create_or_get(req(f"j{i}"))
    assert [j.id for j in store.list(limit=2)] == ["j2", "j1"]
    assert [j.id for j in store.list(status=JobStatus.PENDING, limit=5, offset=2)] == ["j0"]


def test_search_by_id_or_mix_request_id_with_a_total(store: JobStore) -> None:
    # Given jobs whose ids and mix_request_ids hold LIKE's wildcards as plain characters
    for job_id, mix in (
        ("alpha_1", "req-100"),
        ("alphaX1", "req-2%"),
        ("beta", "alpha-mix"),
        ("gamma", None),
    ):
        body = req(job_id).model_dump(mode="json")
        store.create_or_get(parse_request(dict(body, mix_request_id=mix)))
    store.advance("beta", status=JobStatus.FAILED)

    def ids(**kw: object) -> tuple[list[str], int]:
        found, total = store.search(**kw)  # type: ignore[arg-type]
        return [j.id for j in found], total

    assert ids(text="alpha") == (["beta", "alphaX1", "alpha_1"], 3)  # newest first, id or mix id
    assert ids(text="a_1") == (["alpha_1"], 1)  # '_' is not "any character"
    assert ids(text="2%") == (["alphaX1"], 1)
    assert ids(text="alpha", status=JobStatus.FAILED) == (["beta"], 1)
    assert ids(text="alpha", limit=1, offset=1) == (["alphaX1"], 3)  # a page, and how many in all
    assert ids() == (["gamma", "beta", "alphaX1", "alpha_1"], 4)


NOTE = f"{ATTEMPT_MARK} 2 (retry)"


def test_restart_is_a_compare_and_set_and_keeps_the_attempt(store: JobStore) -> None:
    store.create_or_get(req())
    store.advance("job-1", error="clip 0 failed: gone")
    store.advance(
        "job-1", status=JobStatus.COMPLETED_WITH_GAPS, metrics={"render": {"clip_stats": {"total": 1}}}
    )
    done = store.get("job-1")

    def history() -> JobAttempt:
        return JobAttempt(job_id="job-1", attempt=1, status=done.status, finished_at=done.finished_at)

    # Two retries race: one wins, and the job starts its second attempt from zero
    results = [
        store.restart("job-1", from_status=JobStatus.COMPLETED_WITH_GAPS, history=history(), note=NOTE)
        for _ in range(2)
    ]
    assert results == [True, False]
    job = store.get("job-1")
    assert (job.status, job.progress, job.attempts, job.finished_at) == ("PENDING", 0, 2, None)
    assert job.metrics == {} and "clip 0 failed: gone" in job.error_log and job.current_error() is None
    # The new attempt shows no error of the last one; the log keeps them
    store.advance("job-1", error="clip 0 failed: 404")
    assert store.get("job-1").current_error().endswith("clip 0 failed: 404")
    # An error of several lines (ffmpeg's stderr tail) stays whole: the cause is often not the last line
    store.advance("job-1", error="ffmpeg exited 1: No space left on device\nError initializing output stream")
    assert (
        store.get("job-1")
        .current_error()
        .endswith("ffmpeg exited 1: No space left on device | Error initializing output stream")
    )
    assert [(a.attempt, a.status) for a in store.history("job-1")] == [(1, "COMPLETED_WITH_GAPS")]


def test_counts_and_retention_deletes_only_finished_records(store: JobStore) -> None:
    for name in ("done", "running"):
        store.create_or_get(req(name))
    store.advance("done", status=JobStatus.FAILED)
    assert store.count_by_status() == {"FAILED": 1, "PENDING": 1}
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert [j.id for j in store.finished_before(later)] == ["done"]
    assert [j.id for j in store.finished_since(later - timedelta(hours=1))] == ["done"]
    assert not store.delete_finished("running", finished_before=later)
    assert not store.delete_finished("done", finished_before=later - timedelta(hours=1))
    assert store.delete_finished("done", finished_before=later)
    with pytest.raises(JobNotFound):
        store.get("done")
    assert store.get("running").status == "PENDING"


def test_processes_opening_a_fresh_database_together_all_get_their_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    code = "import sys; from pipeline.store import JobStore; print(JobStore(sys.argv[1]).count_by_status())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    results = [(p.wait(60), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0] * 6, [err for _, err in results if err]
