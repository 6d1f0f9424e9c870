"""Redis gone for good: the reconciler ends, in SQL alone, the jobs nothing can move any more, and only those
(``pipeline/reconcile.py::end_without_redis``, called by ``clipline/sweeper.py``)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline import reconcile
from pipeline.context import Context
from pipeline.models import JobStatus
from pipeline.observe import Observer
from tests.pipeline.test_clipstage import planned
from tests.stubs import stub_context

ENV = {"CLIPLINE_RECONCILE_AFTER_S": "3", "CLIPLINE_RECONCILE_MAX_REPAIRS": "2"}  # bound: 3 x 3 s = 9 s


class Recording(Observer):
    def __init__(self) -> None:
        self.finished: list[str] = []

    def job_finished(self, status: str, duration_s: float) -> None:
        self.finished.append(status)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def with_redis(tmp_path: Path) -> Context:
    return stub_context(tmp_path, server=fakeredis.FakeServer(), **ENV)


def _without_redis(ctx: Context, observer: Observer) -> Context:
    """Another process's context on the same database, whose Redis is unreachable."""
    lost = Context(ctx.settings, observer=observer)
    lost.redis = redis.Redis(port=_closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        lost.redis.ping()
    return lost


def test_the_bound_is_as_long_as_the_repairs_would_have_taken(with_redis: Context) -> None:
    assert reconcile.redis_gone_bound_s(with_redis.settings) == 9.0


def test_a_job_idle_past_the_bound_is_failed_naming_redis_once_beside_other_sweepers(
    with_redis: Context,
) -> None:
    job_id = planned(with_redis, lines=2, job_id="j-gone")
    assert with_redis.store.advance(job_id, status=JobStatus.EXTRACTING)  # its clips lost with Redis
    observer = Recording()
    sweepers = [_without_redis(with_redis, observer) for _ in range(3)]
    later = datetime.now(UTC) + timedelta(seconds=10)
    ended = [
        reconcile.end_without_redis(s, redis_gone_s=10, cause="ConnectionError", now=later) for s in sweepers
    ]
    job = with_redis.store.get(job_id)
    assert job.status == JobStatus.FAILED.value
    assert "Redis" in job.error_log and "unreachable" in job.error_log
    # exactly one sweeper ended it: counted and logged once
    assert sorted(len(e) for e in ended) == [0, 0, 1] and observer.finished == ["FAILED"]


def test_a_job_still_progressing_is_left_alone(with_redis: Context) -> None:
    job_id = planned(with_redis, lines=2, job_id="j-moving")
    assert with_redis.store.advance(job_id, status=JobStatus.EXTRACTING)
    lost = _without_redis(with_redis, Recording())
    updated = with_redis.store.get(job_id).updated_at.replace(tzinfo=UTC)
    soon = updated + timedelta(seconds=8)  # its last progress is within the bound
    assert reconcile.end_without_redis(lost, redis_gone_s=60, cause="ConnectionError", now=soon) == []
    assert with_redis.store.get(job_id).status == JobStatus.EXTRACTING.value


def test_an_assembly_is_given_its_whole_timeout_before_it_is_failed(with_redis: Context) -> None:
    job_id = planned(with_redis, lines=2, job_id="j-asm")
    assert with_redis.store.advance(job_id, status=JobStatus.ASSEMBLING, progress=90)
    lost = _without_redis(with_redis, Recording())
    lock_s = with_redis.settings.assemble_timeout_s + 120  # an assembler may be at work until then
    within = datetime.now(UTC) + timedelta(seconds=lock_s - 5)
    assert reconcile.end_without_redis(lost, redis_gone_s=lock_s, cause="ConnectionError", now=within) == []
    assert with_redis.store.get(job_id).status == JobStatus.ASSEMBLING.value
    after = datetime.now(UTC) + timedelta(seconds=lock_s + 5)
    ended = reconcile.end_without_redis(lost, redis_gone_s=lock_s, cause="ConnectionError", now=after)
    assert [r.job_id for r in ended] == [job_id]
    assert with_redis.store.get(job_id).status == JobStatus.FAILED.value
