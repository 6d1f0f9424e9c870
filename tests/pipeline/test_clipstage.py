"""The clip and fallback stages' state cases, in process on the in-memory stand-ins (no server, no ffmpeg).

The cut itself is replaced by a fake that writes a clip file and returns its
record, so these tests are about what the stage decides around the cut:
duplicates, lost Redis state, cancellation, retries and fallback policy. The
integration tests (tests/integration/test_stages.py, test_render.py) prove the
same stage against real Redis, ffmpeg and HLS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import structlog

from pipeline import clip_objects, clipstage, cutting, files, jobs, planning, subprocesses
from pipeline import logs as logs_module
from pipeline.context import Context, JobView
from pipeline.errors import FFmpegFailed, FFmpegMissing, SourceNotFound, SourceUnavailable, Superseded
from pipeline.models import ClipOutcome, ClipRecord, JobStatus
from tests.stubs import stub_context

Cut = Callable[[Context, JobView, int], ClipRecord]


class FakeCuts:
    """Stands in for cutting.cut_from_hls / cut_from_local / make_placeholder; counts what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.hls_error: Exception | None = None
        self.during_cut: Callable[[Context, str], None] | None = None  # runs inside every cut
        self.local_copy = False

    def _clip(self, how: str, outcome: ClipOutcome) -> Cut:
        def cut(ctx: Context, view: JobView, index: int) -> ClipRecord:
            self.calls.append((how, index))
            if self.during_cut is not None:
                self.during_cut(ctx, view.job_id)
            if how == "hls" and self.hls_error is not None:
                raise self.hls_error
            path = files.clip_path(ctx.settings, view.job_id, index)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"clip")
            slot = view.slots[index]
            return ClipRecord(
                index, outcome, str(path), view.request.lines[index].clip.video_id, frames=slot.frames
            )

        return cut

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(cutting, "cut_from_hls", self._clip("hls", ClipOutcome.OK))
        local = self._clip("local", ClipOutcome.LOCAL)
        monkeypatch.setattr(
            cutting, "cut_from_local", lambda ctx, view, i: local(ctx, view, i) if self.local_copy else None
        )
        monkeypatch.setattr(cutting, "make_placeholder", self._clip("placeholder", ClipOutcome.PLACEHOLDER))


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
    return stub_context(tmp_path, server=server)


def planned(ctx: Context, lines: int = 3, job_id: str = "j1") -> str:
    request: dict[str, Any] = {
        "job_id": job_id,
        "output": {"width": 320, "height": 180, "fps": 30},
        "lines": [
            {
                "text": f"line {i + 1}",
                "start_ms": 1000 * i,
                "end_ms": 1000 * (i + 1),
                "clip": {
                    "video_id": f"v{i % 2}",
                    "start_ms": 1000 * i,  # distinct windows: twins (clip_reuse) are tested on their own
                    "end_ms": 1000 * i + 900,
                    "hls_url": "http://cdn.test/x.m3u8",
                },
            }
            for i in range(lines)
        ],
    }
    assert planning.plan(ctx, request).fan_out
    return job_id


def clip(ctx: Context, job_id: str, index: int, attempt: int = 1) -> clipstage.Step:
    return clipstage.run_clip(ctx, job_id, index, attempt=attempt, max_attempts=3)


def test_a_duplicate_delivery_changes_nothing_and_assembly_fires_once(ctx: Context, cuts: FakeCuts) -> None:
    job = planned(ctx)
    steps = [clip(ctx, job, 0), clip(ctx, job, 0), clip(ctx, job, 1), clip(ctx, job, 2), clip(ctx, job, 2)]
    assert [type(s).__name__ for s in steps] == ["Done", "Skipped", "Done", "Done", "Skipped"]
    assert [s.fire for s in steps if isinstance(s, clipstage.Done)] == [False, False, True]
    assert cuts.calls == [("hls", 0), ("hls", 1), ("hls", 2)]  # nothing was cut twice
    assert ctx.store.get(job).progress == clipstage.PROGRESS_CLIPS_TO


def test_two_workers_racing_on_one_slot_record_it_once(
    tmp_path: Path, server: fakeredis.FakeServer, cuts: FakeCuts
) -> None:
    # Given two workers (contexts) sharing one Redis and one database, both delivered slot 0
    a = stub_context(tmp_path, server=server)
    b = stub_context(tmp_path, server=server)
    job = planned(a, lines=1)
    # When both cut it (the second passed its "already recorded" check before the first recorded)
    first = clipstage.finish(a, a.view(job), cutting.cut_from_hls(a, a.view(job), 0))
    second = clipstage.finish(b, b.view(job), cutting.cut_from_hls(b, b.view(job), 0))
    # Then one counts and fires; the other is a no-op
    assert (first.added, first.fire) == (True, True)
    assert (second.added, second.fire) == (False, False)
    assert a.completion.done_count(job) == 1


def test_a_clip_finished_before_a_crash_is_recorded_from_its_sidecar_not_cut_again(
    ctx: Context, cuts: FakeCuts
) -> None:
    job = planned(ctx, lines=2)
    assert isinstance(clip(ctx, job, 0), clipstage.Done)
    # The worker died after writing the sidecar, and Redis lost the record with a restart
    ctx.completion.forget(job)
    again = clip(ctx, job, 0)
    assert isinstance(again, clipstage.Done) and again.added
    assert cuts.calls == [("hls", 0)]
    # A sidecar whose clip file is gone is not trusted: the clip is cut again
    files.clip_path(ctx.settings, job, 1).parent.mkdir(parents=True, exist_ok=True)
    sidecar = ClipRecord(1, ClipOutcome.OK, str(files.clip_path(ctx.settings, job, 1)), "v1")
    files.write_json_atomic(files.clip_record_path(ctx.settings, job, 1), sidecar.to_json())
    assert isinstance(clip(ctx, job, 1), clipstage.Done)
    assert cuts.calls == [("hls", 0), ("hls", 1)]


class Killed(BaseException):
    """A worker SIGKILLed at this point: nothing after it runs (not an Exception: nothing catches it)."""


def _final_events(logs: list[dict[str, Any]], index: int) -> list[str]:
    return [
        e["clip_status"]
        for e in logs
        if e["event"] == logs_module.CLIP_EVENT
        and e["clip_task_id"].endswith(f":{index}")
        and e["clip_status"] not in ("started", "retrying")
    ]


@pytest.mark.parametrize("stage", ["clip", "fallback"])
def test_an_outcome_recorded_by_a_delivery_killed_before_its_log_line_is_logged_by_the_next_one(
    ctx: Context, cuts: FakeCuts, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # Given a delivery killed between recording the slot's outcome (sidecar and Redis) and its final
    # clip event (announce): its message comes back
    job = planned(ctx, lines=2)
    deliver = (
        (lambda: clip(ctx, job, 0))
        if stage == "clip"
        else (lambda: clipstage.run_fallback(ctx, job, 0, "SourceNotFound: gone"))
    )
    real = clipstage.announce

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    monkeypatch.setattr(clipstage, "announce", killed)
    with pytest.raises(Killed):
        deliver()
    monkeypatch.setattr(clipstage, "announce", real)
    assert ctx.completion.has(job, 0) and not clip_objects.was_logged(ctx, job, 0)
    # When it is delivered again, and once more
    with structlog.testing.capture_logs() as logs:
        again = deliver()
        third = deliver()
    # Then the redelivery logs the slot's final status (once), without cutting it again
    assert again == third == clipstage.Skipped("already recorded")
    want = "succeeded" if stage == "clip" else "placeholder"
    assert _final_events(logs, 0) == [want]
    assert clip_objects.was_logged(ctx, job, 0)
    assert len(cuts.calls) == 1


def test_redis_losing_the_job_mid_way_is_repaired_by_the_next_clip(
    ctx: Context, cuts: FakeCuts, server: fakeredis.FakeServer
) -> None:
    job = planned(ctx, lines=3)
    clip(ctx, job, 0)
    clip(ctx, job, 1)
    ctx.redis.flushall()  # Redis restarted without persistence: outcomes and the planned marker are gone
    last = clip(ctx, job, 2)
    # The last clip notices, records 0 and 1 again from their sidecars, and completes the set
    assert isinstance(last, clipstage.Done) and last.fire
    assert sorted(ctx.completion.outcomes(job)) == [0, 1, 2]
    assert cuts.calls == [("hls", 0), ("hls", 1), ("hls", 2)]


def test_a_job_cancelled_during_a_cut_records_nothing_and_sweeps_its_files(
    ctx: Context, cuts: FakeCuts
) -> None:
    job = planned(ctx, lines=2)
    cuts.during_cut = lambda c, job_id: jobs.cancel(c, job_id) and None
    step = clip(ctx, job, 0)
    assert isinstance(step, clipstage.Skipped) and "CANCELLED" in step.why
    assert ctx.completion.done_count(job) == 0
    assert not files.job_work_dir(ctx.settings, job).exists()
    # A message for the cancelled job that arrives later is skipped before any cut
    cuts.during_cut = None
    assert isinstance(clip(ctx, job, 1), clipstage.Skipped) and cuts.calls == [("hls", 0)]


def test_transient_errors_retry_until_the_last_attempt_then_fall_back(ctx: Context, cuts: FakeCuts) -> None:
    job = planned(ctx, lines=1)
    cuts.hls_error = SourceUnavailable("cdn answered HTTP 503", video_id="v0")
    steps = [clip(ctx, job, 0, attempt=n) for n in (1, 2, 3)]
    assert [type(s).__name__ for s in steps] == ["Retry", "Retry", "Fallback"]
    last = steps[-1]
    assert isinstance(last, clipstage.Fallback)
    assert last.reason == "retries exhausted after 3 attempts: SourceUnavailable: cdn answered HTTP 503"
    assert ctx.completion.attempts(job, 0)[0] == 3


@pytest.mark.parametrize(
    "error",
    [SourceNotFound("gone", video_id="v0"), FFmpegFailed("ffmpeg exited 1", returncode=1), KeyError("bug")],
)
def test_a_permanent_error_or_a_bug_falls_back_at_once(
    ctx: Context, cuts: FakeCuts, error: Exception
) -> None:
    job = planned(ctx, lines=1)
    cuts.hls_error = error
    step = clip(ctx, job, 0)
    assert isinstance(step, clipstage.Fallback) and type(error).__name__ in step.reason


def test_ffmpeg_missing_fails_the_slot_without_a_fallback(ctx: Context, cuts: FakeCuts) -> None:
    job = planned(ctx, lines=1)
    cuts.hls_error = FFmpegMissing("ffmpeg not found")
    step = clip(ctx, job, 0)
    assert isinstance(step, clipstage.Done) and step.record.outcome == ClipOutcome.FAILED and step.fire
    assert "ffmpeg is missing" in (ctx.store.get(job).error_log or "")


def test_the_fallback_follows_the_live_policy(ctx: Context, cuts: FakeCuts) -> None:
    job = planned(ctx, lines=3)
    cuts.local_copy = True
    local = clipstage.run_fallback(ctx, job, 0, "SourceNotFound: gone")
    assert isinstance(local, clipstage.Done) and local.record.outcome == ClipOutcome.LOCAL
    assert local.record.reason == "SourceNotFound: gone"
    ctx.live.set("fallback_local", "off")
    ctx.live.refresh(force=True)  # what a worker's refresh thread does within REFRESH_S
    placeholder = clipstage.run_fallback(ctx, job, 1, "SourceNotFound: gone")
    assert isinstance(placeholder, clipstage.Done) and placeholder.record.outcome == ClipOutcome.PLACEHOLDER
    assert placeholder.record.reason == "SourceNotFound: gone; local fallback disabled"
    ctx.live.set("fallback_placeholder", "off")
    ctx.live.refresh(force=True)
    failed = clipstage.run_fallback(ctx, job, 2, "SourceNotFound: gone")
    assert isinstance(failed, clipstage.Done) and failed.record.outcome == ClipOutcome.FAILED and failed.fire
    assert cuts.calls == [("local", 0), ("placeholder", 1)]
    assert clipstage.run_fallback(ctx, job, 2, "again") == clipstage.Skipped("already recorded")


def test_a_finished_job_skips_late_clip_messages(ctx: Context, cuts: FakeCuts) -> None:
    job = planned(ctx, lines=2)
    ctx.store.advance(job, status=JobStatus.FAILED, error="ended elsewhere")
    step = clip(ctx, job, 1)
    assert step == clipstage.Skipped("job is FAILED") and cuts.calls == []


def cancel_and_retry(ctx: Context, job_id: str) -> None:
    """What an operator does while a clip is cut: cancel the job, retry it; attempt 2 is planned."""
    jobs.cancel(ctx, job_id)
    jobs.retry(ctx, job_id, lambda request: planning.plan(ctx, request) and None)


def test_a_clip_of_an_attempt_cancelled_and_retried_while_it_was_cut_is_dropped(
    ctx: Context, cuts: FakeCuts
) -> None:
    # Given attempt 1's clip of slot 0 being cut when the job is cancelled and retried
    job = planned(ctx, lines=2)
    cuts.during_cut = cancel_and_retry
    step = clip(ctx, job, 0)
    # Then its outcome is dropped: nothing recorded or counted for attempt 2, no sidecar left for it
    assert ctx.store.get(job).attempts == 2
    assert isinstance(step, clipstage.Skipped) and "attempt" in step.why, step
    assert ctx.completion.done_count(job) == 0
    assert clip_objects.read_record(ctx, job, 0) is None
    # And attempt 2's own delivery of the slot cuts it and counts it
    cuts.during_cut = None
    again = clip(ctx, job, 0)
    assert isinstance(again, clipstage.Done) and again.added
    assert cuts.calls == [("hls", 0), ("hls", 0)]


@pytest.mark.parametrize(
    "error", [SourceUnavailable("HTTP 503", video_id="v0"), SourceNotFound("gone", video_id="v0")]
)
def test_a_failed_clip_of_an_earlier_attempt_neither_retries_nor_falls_back(
    ctx: Context, cuts: FakeCuts, error: Exception
) -> None:
    job = planned(ctx, lines=1)
    cuts.during_cut = cancel_and_retry
    cuts.hls_error = error
    step = clip(ctx, job, 0)
    assert isinstance(step, clipstage.Skipped) and "attempt" in step.why, step
    # Its error is not attempt 2's: nothing noted for the slot's report
    assert ctx.completion.attempts(job, 0) == (0, None)


def test_a_fallback_of_an_earlier_attempt_adds_no_error_line_and_records_nothing(
    ctx: Context, cuts: FakeCuts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a slot whose local copy fails and no placeholder is allowed (the slot would fail, naming why)
    job = planned(ctx, lines=1)
    ctx.live.set("fallback_placeholder", "off")
    ctx.live.refresh(force=True)

    def local_copy_fails(c: Context, view: JobView, index: int) -> ClipRecord:
        cancel_and_retry(c, view.job_id)  # while it is tried, the job is cancelled and retried
        raise FFmpegFailed("ffmpeg exited 1", returncode=1)

    monkeypatch.setattr(cutting, "cut_from_local", local_copy_fails)
    step = clipstage.run_fallback(ctx, job, 0, "SourceNotFound: gone")
    # Then attempt 2 gets neither its outcome nor its error line
    assert isinstance(step, clipstage.Skipped) and "attempt" in step.why, step
    assert ctx.completion.done_count(job) == 0
    assert "clip 0" not in (ctx.store.get(job).error_log or "")


def test_a_message_sent_for_an_earlier_attempt_is_skipped_before_any_cut(
    ctx: Context, cuts: FakeCuts
) -> None:
    job = planned(ctx, lines=1)
    cancel_and_retry(ctx, job)
    # A clip or fallback message of attempt 1 (a broker retry, a fallback sent just before the cancel)
    step = clipstage.run_clip(ctx, job, 0, attempt=2, max_attempts=3, job_attempt=1)
    assert isinstance(step, clipstage.Skipped) and "attempt" in step.why, step
    fallback = clipstage.run_fallback(ctx, job, 0, "SourceNotFound: gone", job_attempt=1)
    assert isinstance(fallback, clipstage.Skipped) and "attempt" in fallback.why, fallback
    assert cuts.calls == [] and ctx.completion.done_count(job) == 0
    # Attempt 2's message of the same slot is cut
    current = clipstage.run_clip(ctx, job, 0, attempt=1, max_attempts=3, job_attempt=2)
    assert isinstance(current, clipstage.Done) and current.added


def test_a_placeholder_of_an_earlier_attempt_never_replaces_the_current_attempts_clip_file(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given attempt 2's clip of slot 0 in place, and an encode of attempt 1 finishing (the real
    # cutting code around a stand-in for ffmpeg, which writes its output and reports its frames)
    job = planned(ctx, lines=1)
    cancel_and_retry(ctx, job)
    final = files.clip_path(ctx.settings, job, 0)
    final.parent.mkdir(parents=True, exist_ok=True)
    final.write_bytes(b"attempt 2's clip")
    slot = ctx.view(job).slots[0]

    def ffmpeg(argv: list[str], **_: Any) -> subprocesses.Completed:
        Path(next(a for a in argv if ".tmp" in a)).write_bytes(b"attempt 1's clip")
        return subprocesses.Completed(argv, 0, f"frame={slot.frames}\n".encode(), "")

    monkeypatch.setattr(cutting, "run", ffmpeg)
    stale = replace(ctx.view(job), attempt=1)
    # When it would be renamed into place, it is dropped: the file stays attempt 2's, no temporary left
    with pytest.raises(Superseded):
        cutting.make_placeholder(ctx, stale, 0)
    assert final.read_bytes() == b"attempt 2's clip"
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]
    # The same encode for the current attempt is renamed into place
    assert cutting.make_placeholder(ctx, replace(stale, attempt=2), 0).frames == slot.frames
    assert final.read_bytes() == b"attempt 1's clip"  # (the stand-in writes the same bytes)


def test_a_plan_names_the_attempt_its_clip_messages_are_for(ctx: Context) -> None:
    job = planned(ctx, lines=1)
    jobs.cancel(ctx, job)
    plans: list[planning.Plan] = []
    jobs.retry(ctx, job, lambda request: plans.append(planning.plan(ctx, request)))
    assert [(p.fan_out, p.attempt) for p in plans] == [(True, 2)]
