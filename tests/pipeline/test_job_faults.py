"""Issue 12, items 4-6 on the in-memory stand-ins: every job ends, a redelivered plan is one job, and the
concurrency faults (lease waits, the song lock, early assembly, foreign slot indexes, duplicate clips).

The cut is the fake of ``test_clipstage``; nothing here runs ffmpeg or reaches a server (the dead song
port is a loopback port where nothing listens).
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from pipeline import assembly, audio, clipstage, keys, leases, planning, reconcile
from pipeline.context import Context
from pipeline.errors import SourceUnavailable, is_transient
from pipeline.models import JobStatus
from pipeline.stages import Stage
from tests.pipeline.test_clipstage import FakeCuts, clip, planned
from tests.stubs import stub_context


@pytest.fixture
def cuts(monkeypatch: pytest.MonkeyPatch) -> FakeCuts:
    fake = FakeCuts()
    fake.install(monkeypatch)
    return fake


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def ctx(tmp_path: Path, server: fakeredis.FakeServer) -> Context:
    # The song tests reach a dead port on loopback: a refused address would fail them at once instead.
    return stub_context(tmp_path, server=server, CLIPLINE_ALLOW_PRIVATE_NETWORKS="true")


def request(job_id: str | None = "j1", *, lines: int = 2, audio_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "output": {"width": 320, "height": 180, "fps": 30},
        "lines": [
            {
                "text": f"line {i + 1}",
                "start_ms": 1000 * i,
                "end_ms": 1000 * (i + 1),
                "clip": {"video_id": "v0", "start_ms": 0, "end_ms": 900, "hls_url": "http://cdn.test/x.m3u8"},
            }
            for i in range(lines)
        ],
    }
    if job_id is not None:
        body["job_id"] = job_id
    if audio_url is not None:
        body["audio"] = {"url": audio_url}
    return body


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


# Item 5: a plan message without job_id, delivered twice, is one job.


def test_a_redelivered_plan_message_without_job_id_plans_one_job(ctx: Context) -> None:
    first = planning.plan(ctx, request(None), message_id="5b1f0c9e-msg")
    again = planning.plan(ctx, request(None), message_id="5b1f0c9e-msg")
    assert first.job_id == again.job_id == planning.job_id_for_message("5b1f0c9e-msg")
    assert first.fan_out and not again.fan_out  # the redelivery found the job being planned
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert [j.id for j in ctx.store.unfinished(updated_before=later)] == [first.job_id]


# Item 4: a failed plan releases its lock.


def test_a_plan_that_fails_half_way_releases_its_lock(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: Any, **k: Any) -> bool:
        raise OSError("database gone")

    monkeypatch.setattr(ctx.store, "advance", broken)
    with pytest.raises(OSError):
        planning.plan(ctx, request("j-fail"))
    assert not ctx.redis.exists(keys.job_lock("j-fail", Stage.PLAN))  # the retry can plan at once
    monkeypatch.undo()
    assert planning.plan(ctx, request("j-fail")).fan_out


# Item 6: lease waits are transient; the song has one preparer at a time.


def test_a_lease_wait_that_times_out_is_retried_not_a_placeholder(ctx: Context, cuts: FakeCuts) -> None:
    job = planned(ctx, lines=1)
    cuts.hls_error = leases.LeaseTimeout("segment lock still held after 30s")
    assert is_transient(cuts.hls_error)
    step = clip(ctx, job, 0)
    assert isinstance(step, clipstage.Retry)


def test_plan_and_assemble_never_prepare_the_song_together(ctx: Context) -> None:
    planning.plan(ctx, request("j-song", audio_url=f"http://127.0.0.1:{dead_port()}/song.m4a"))
    view = ctx.view("j-song")
    with leases.held(ctx.redis, keys.job_lock("j-song", audio.SONG_LOCK), wait_s=0):  # one preparer at work
        with pytest.raises(leases.LeaseTimeout):
            audio.prepare(ctx, view, wait_s=0.2)  # the other waits, then retries later: it never fetches
        planning.fanned_out(ctx, planning.Plan(view.request, True))  # the plan stage leaves it: no error
    assert not (Path(ctx.settings.work_dir) / "j-song" / "audio" / "source").exists()


# Item 6: an assemble message acts only on a complete set.


def test_an_early_assemble_message_changes_nothing(ctx: Context, cuts: FakeCuts) -> None:
    job = planned(ctx, lines=3)
    assert isinstance(clip(ctx, job, 0), clipstage.Done)
    assert assembly.assemble(ctx, job) is None  # two slots have no outcome yet
    assert ctx.store.get(job).status == JobStatus.EXTRACTING.value


# Item 6: a clip message naming a slot the job does not have is never processed.


@pytest.mark.parametrize("index", [-1, 3, 99, True, "1"])
def test_a_clip_index_outside_the_job_is_refused(ctx: Context, cuts: FakeCuts, index: Any) -> None:
    job = planned(ctx, lines=3)
    with pytest.raises(clipstage.SlotOutOfRange):
        clipstage.run_clip(ctx, job, index, attempt=1, max_attempts=3)
    with pytest.raises(clipstage.SlotOutOfRange):
        clipstage.run_fallback(ctx, job, index, "source gone")
    assert cuts.calls == [] and ctx.completion.done_count(job) == 0


# Item 6: a losing duplicate never writes over the winner's clip or sidecar.


def test_a_duplicate_delivered_while_the_slot_is_cut_steps_aside(
    ctx: Context, cuts: FakeCuts, tmp_path: Path, server: fakeredis.FakeServer
) -> None:
    job = planned(ctx, lines=1)
    other = stub_context(tmp_path, server=server)  # a second worker on the same Redis and database
    seen: list[clipstage.Step] = []
    cuts.during_cut = lambda c, j: seen.append(clipstage.run_clip(other, j, 0, attempt=1, max_attempts=3))
    winner = clip(ctx, job, 0)
    assert isinstance(winner, clipstage.Done) and winner.added
    assert seen == [clipstage.Skipped(clipstage.ANOTHER_DELIVERY)]
    assert cuts.calls == [("hls", 0)]  # the duplicate cut nothing, so it wrote nothing
    fallback = clipstage.run_fallback(other, job, 0, "late duplicate")  # after the winner: already recorded
    assert isinstance(fallback, clipstage.Skipped) and cuts.calls == [("hls", 0)]


# Item 4: the song that never works fails the job after its last retry, naming it.


def assemble_until_done(ctx: Context, job_id: str, *, last_attempt: bool, timeout_s: float = 20) -> Any:
    """What a worker does: assemble, and again after each deferral (the song on a background thread)."""
    deadline = time.monotonic() + timeout_s
    while isinstance(done := assembly.assemble(ctx, job_id, last_attempt=last_attempt), assembly.Deferred):
        assert time.monotonic() < deadline, "still deferred"
        time.sleep(0.05)
    return done


def test_a_song_that_never_answers_fails_the_job_after_its_attempts(ctx: Context, cuts: FakeCuts) -> None:
    url = f"http://127.0.0.1:{dead_port()}/song.m4a"
    planning.plan(ctx, request("j-dead", lines=1, audio_url=url))
    assert isinstance(clip(ctx, "j-dead", 0), clipstage.Done)
    # The assembler never fetches the song in its own thread: it defers while background attempts fail,
    # starting the next one, until SONG_ATTEMPTS have failed; then the error is the actor's to retry ...
    with pytest.raises(SourceUnavailable):
        assemble_until_done(ctx, "j-dead", last_attempt=False)
    assert int(ctx.redis.hget(keys.job_song("j-dead"), "failures") or 0) == audio.SONG_ATTEMPTS
    # ... and its last attempt fails the job naming the song
    assert assemble_until_done(ctx, "j-dead", last_attempt=True) == JobStatus.FAILED
    job = ctx.store.get("j-dead")
    assert job.status == "FAILED" and url in job.error_log and "could not be read" in job.error_log


def test_an_unexpected_error_in_the_assembly_fails_the_job_at_once_naming_it(
    ctx: Context, cuts: FakeCuts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a fault of clipline's own while the song is prepared (not one the actor retries)
    planning.plan(ctx, request("j-bug", lines=1, audio_url="http://cdn.test/song.m4a"))
    assert isinstance(clip(ctx, "j-bug", 0), clipstage.Done)

    def broken(ctx: Context, view: Any, **_: Any) -> None:
        raise ValueError("a surprise")

    monkeypatch.setattr(audio, "prepare", broken)
    # Then the job ends FAILED after the one background attempt, with the error named, not stuck in
    # ASSEMBLING for the reconciler (nor retried: a fault of ours is not transient)
    assert assemble_until_done(ctx, "j-bug", last_attempt=False) == JobStatus.FAILED
    job = ctx.store.get("j-bug")
    assert job.status == "FAILED" and "internal error ValueError: a surprise" in job.error_log


# Item 4: the reconciler gives up after a bounded number of repairs.


def test_the_reconciler_gives_up_on_a_job_its_repairs_do_not_move(ctx: Context) -> None:
    job_id = "j-stuck"
    ctx.store.create_or_get(planning.validate(ctx, request(job_id)))  # PENDING; every plan message is lost
    sent: list[tuple[Any, ...]] = []
    bound = ctx.settings.reconcile_max_repairs
    for _ in range(bound):
        repairs = reconcile.sweep(ctx, lambda *a, **_: sent.append(a), stale_s=0)
        assert [r.action for r in repairs] == ["plan re-sent"]
    assert ctx.store.get(job_id).status == JobStatus.PENDING.value
    last = reconcile.sweep(ctx, lambda *a, **_: sent.append(a), stale_s=0)
    assert [r.action for r in last] == ["failed: too many repairs"]
    job = ctx.store.get(job_id)
    assert job.status == JobStatus.FAILED.value
    assert f"gave up after {bound} repairs" in job.error_log and "plan re-sent" in job.error_log
    assert len(sent) == bound and reconcile.sweep(ctx, lambda *a, **_: sent.append(a), stale_s=0) == []
    # and its report.json says so, every line listed without footage
    assert job.report_path is not None
    report = json.loads(Path(job.report_path).read_text())
    assert report["status"] == "FAILED" and "gave up" in report["error"]
    assert [g["index"] for g in report["summary"]["missing_footage"][0]["lines"]] == [0, 1]


def test_repairs_are_counted_since_the_job_last_moved(ctx: Context, cuts: FakeCuts) -> None:
    """Found by the chaos soak (bench/chaos.py, seed 8): a job whose plan was re-sent 5 times while it
    could not be planned was then planned and cut 6 of its 9 clips, and at its next idle moment (two
    slow clips) the reconciler gave up on it ("gave up after 5 repairs"): the count never restarted
    when the job moved."""
    job_id = "j-moved"
    ctx.store.create_or_get(planning.validate(ctx, request(job_id, lines=3)))
    bound = ctx.settings.reconcile_max_repairs
    sweep = lambda: [r.action for r in reconcile.sweep(ctx, lambda *a, **_: None, stale_s=0)]  # noqa: E731
    # Given a job repaired as often as allowed while it could not be planned
    for _ in range(bound):
        assert sweep() == ["plan re-sent"]
    # When it is planned at last and cuts a clip, then waits on the others
    planning.plan(ctx, request(job_id, lines=3))
    assert isinstance(clip(ctx, job_id, 0), clipstage.Done)
    # Then its next idle moment is repaired, not failed
    assert "failed: too many repairs" not in sweep()
    assert ctx.store.get(job_id).status != JobStatus.FAILED.value
    # and once it moves no more, it is failed after as many repairs again
    for _ in range(bound - 1):
        assert "failed: too many repairs" not in sweep()
    assert sweep() == ["failed: too many repairs"]
    assert ctx.store.get(job_id).status == JobStatus.FAILED.value


def test_a_job_given_up_while_extracting_reports_the_clips_it_has(ctx: Context, cuts: FakeCuts) -> None:
    planning.plan(ctx, request("j-half", lines=2))
    assert isinstance(clip(ctx, "j-half", 0), clipstage.Done)  # slot 1's message is lost, again and again
    for _ in range(ctx.settings.reconcile_max_repairs + 1):
        reconcile.sweep(ctx, lambda *a, **_: None, stale_s=0)
    job = ctx.store.get("j-half")
    assert job.status == JobStatus.FAILED.value and job.report_path is not None
    report = json.loads(Path(job.report_path).read_text())
    assert [s["outcome"] for s in report["slots"]] == ["ok", "failed"]
    assert [g["lines"][0]["index"] for g in report["summary"]["missing_footage"]] == [1]


def fanned_out(ctx: Context, job_id: str, *, lines: int) -> None:
    """The job planned and its clip messages sent (what ``planning.fanned_out`` leaves, without
    resolving its videos): EXTRACTING, no clip started."""
    assert planning.plan(ctx, request(job_id, lines=lines)).fan_out
    extracting = ctx.store.advance(
        job_id, status=JobStatus.EXTRACTING, progress=5, only_from=frozenset({JobStatus.PLANNING})
    )
    assert extracting
    planning.release(ctx, job_id)


def test_a_job_whose_clips_wait_behind_a_backlog_is_not_failed_as_stuck(ctx: Context, cuts: FakeCuts) -> None:
    """Found by the chaos soak (bench/chaos.py, seed 11): a job whose clips waited behind another job's
    (and a clip worker's restart) was re-sent its clips at every sweep and failed after 5 repairs, none
    of its clips ever lost. While the clip stages have messages queued and a consumer each, a repair
    that would only re-send clips is not counted, and is made at most once per the repairs' bound."""
    fanned_out(ctx, "j-wait", lines=2)  # its two clips are queued behind a backlog
    sent: list[tuple[Any, ...]] = []
    bound = ctx.settings.reconcile_max_repairs
    stale_s = 1.0
    every = (bound + 1) * stale_s  # a waiting job's clips are re-sent at most this often
    t0 = datetime.now(UTC) + timedelta(seconds=60)  # every sweep finds the job idle for stale_s

    def sweep(backlog: reconcile.Backlog, after_s: float) -> list[str]:
        when = t0 + timedelta(seconds=after_s)
        got = reconcile.sweep(
            ctx, lambda *a, **_: sent.append(a), stale_s=stale_s, now=when, backlog=lambda: backlog
        )
        return [r.action for r in got]

    # Given three times as many sweeps as repairs allowed, within one period, behind a moving backlog
    busy = reconcile.Backlog(waiting=40, consumers=1)
    for n in range(3 * bound):
        assert sweep(busy, n * every / (4 * bound)) == [], n
    # Then nothing was re-sent or counted, and the job is still extracting
    assert sent == [] and ctx.store.get("j-wait").status == JobStatus.EXTRACTING.value
    # When the period has passed, its clips are re-sent once, uncounted (a message lost behind the
    # backlog is replaced; a duplicate is skipped at the clip stage)
    assert sweep(busy, every) == [reconcile.CLIPS_RESENT] and len(sent) == 2
    assert sweep(busy, every + 1) == [] and len(sent) == 2
    assert ctx.redis.get(keys.job_repairs("j-wait")) is None
    # And with no consumer (the clip stage gone), repairs count and the job ends in bounded time
    gone = reconcile.Backlog(waiting=40, consumers=0)
    actions = [sweep(gone, every + 2 + n)[0] for n in range(bound + 1)]
    assert actions == [reconcile.CLIPS_RESENT] * bound + ["failed: too many repairs"]
    assert ctx.store.get("j-wait").status == JobStatus.FAILED.value


def test_without_a_backlog_reading_repairs_count_as_before(ctx: Context, cuts: FakeCuts) -> None:
    fanned_out(ctx, "j-unknown", lines=1)
    for backlog in (None, reconcile.Backlog(waiting=0, consumers=2)):  # the broker silent; nothing queued
        ctx.redis.delete(keys.job_repairs("j-unknown"))
        got = reconcile.sweep(ctx, lambda *a, **_: None, stale_s=0, backlog=lambda b=backlog: b)
        assert [r.action for r in got] == [reconcile.CLIPS_RESENT]
        assert int(ctx.redis.get(keys.job_repairs("j-unknown")) or 0) == 1
