"""What the stages rely on from Redis coordination: completion, clip slots, leases, live config.

The cases take a fixture ``r``, a Redis client. They run twice: against the
in-memory stand-in (``tests/pipeline/test_coordination.py``, no server) and
against the real Redis (``tests/integration/test_coordination.py``), so the
stand-in the fast tests use is held to the behaviour of the real thing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from pipeline import leases
from pipeline.completion import Completion
from pipeline.limits import ClusterLimit, SlotTimeout
from pipeline.liveconfig import LiveConfig, UnknownKey
from pipeline.settings import load_settings


def test_each_outcome_counts_once_and_exactly_one_recording_fires(r: redis.Redis) -> None:
    done = Completion(r)
    done.mark_planned("j")
    first = done.record("j", 0, 3, {"outcome": "ok"})
    again = done.record("j", 0, 3, {"outcome": "placeholder"})  # a duplicate delivery
    second = done.record("j", 1, 3, {"outcome": "ok"})
    assert (first.added, first.done, first.fire) == (True, 1, False)
    assert (again.added, again.done, again.fire) == (False, 1, False)
    assert (second.added, second.done, second.fire) == (True, 2, False)
    fired = [done.record("j", 2, 3, {"outcome": "local"}), done.record("j", 2, 3, {"outcome": "local"})]
    assert [f.fire for f in fired] == [True, False]
    assert done.outcomes("j")[0] == {"outcome": "ok"} and done.done_count("j") == 3
    assert not any(x.state_lost for x in (first, again, second, *fired))


def test_a_recording_after_redis_lost_the_job_says_so(r: redis.Redis) -> None:
    done = Completion(r)
    done.mark_planned("j")
    assert not done.record("j", 0, 2, {"outcome": "ok"}).state_lost
    done.forget("j")  # what a restart without persistence does
    lost = done.record("j", 1, 2, {"outcome": "ok"})
    assert lost.state_lost and lost.added and not lost.fire
    assert done.has("j", 1) and not done.has("j", 0)


def test_clips_in_flight_and_their_peak_are_measured(r: redis.Redis) -> None:
    done = Completion(r)
    assert [done.enter("j") for _ in range(3)] == [1, 2, 3]
    done.leave("j")
    done.leave("j")
    assert done.enter("j") == 2 and done.peak("j") == 3
    assert done.note_attempt("j", 4) == 1 and done.note_attempt("j", 4, "boom") == 2
    assert done.attempts("j", 4) == (2, "boom")


def test_a_lease_is_exclusive_and_a_dead_holders_lease_runs_out(r: redis.Redis) -> None:
    with leases.held(r, "k", wait_s=1, lease_s=5):
        with pytest.raises(redis.exceptions.LockError):
            with leases.held(r, "k", wait_s=0.2):
                pass
    # A holder that died without releasing (no renewal): the next one gets the key once the lease ends
    r.set("k", "dead-holder", px=300)
    t0 = time.monotonic()
    with leases.held(r, "k", wait_s=3):
        waited = time.monotonic() - t0
    assert 0.1 < waited < 2.0


def test_without_a_cap_slots_are_numbered_but_never_refused(r: redis.Redis) -> None:
    limit = ClusterLimit(r, lambda: None)
    assert [limit.try_acquire(f"t{i}") for i in range(20)] == list(range(20))


def test_no_more_than_the_limit_run_at_once_and_slots_are_numbered(r: redis.Redis) -> None:
    limit = ClusterLimit(r, lambda: 2, poll_s=0.02)
    running, peak, slots = 0, 0, set()
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with limit.slot(timeout_s=20) as slot:
            with lock:
                running += 1
                peak = max(peak, running)
                slots.add(slot)
            time.sleep(0.15)
            with lock:
                running -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2 and slots == {0, 1}
    assert limit.running() == 0


def test_lowering_the_limit_holds_new_clips_until_running_ones_finish(r: redis.Redis) -> None:
    cap = {"n": 3}
    limit = ClusterLimit(r, lambda: cap["n"], poll_s=0.02)
    release = threading.Event()
    started = threading.Barrier(4)

    def hold() -> None:
        with limit.slot(timeout_s=5):
            started.wait()
            release.wait(5)

    holders = [threading.Thread(target=hold) for _ in range(3)]
    for t in holders:
        t.start()
    started.wait()
    cap["n"] = 1
    with pytest.raises(SlotTimeout):
        with limit.slot(timeout_s=0.3):
            pass
    release.set()
    for t in holders:
        t.join()
    with limit.slot(timeout_s=2) as slot:
        assert slot == 0


def test_a_dead_holder_frees_its_slot_when_its_lease_ends(r: redis.Redis) -> None:
    limit = ClusterLimit(r, lambda: 1, lease_s=0.5, poll_s=0.02)
    assert limit.try_acquire("dead-worker") == 0  # taken and never released nor renewed
    assert limit.try_acquire("other") is None
    t0 = time.monotonic()
    with limit.slot(timeout_s=5) as slot:
        waited = time.monotonic() - t0
    assert slot == 0 and 0.2 < waited < 2.0


def test_live_config_reloads_and_reports_changes(r: redis.Redis) -> None:
    seen: list[tuple[str, Any, Any]] = []
    live = LiveConfig(load_settings({"RENDER_CLIP_CONCURRENCY": "4"}), r, on_change=lambda *a: seen.append(a))
    assert live.refresh(force=True)["render_clip_concurrency"] is None  # no cluster-wide cap by default
    assert live.cluster_cap() is None and live.clip_concurrency() == 4
    other = LiveConfig(load_settings({}), r)
    assert other.set("render_clip_concurrency", "2") == 2
    assert other.set("fallback_local", "off") is False
    values = live.refresh(force=True)
    assert values["render_clip_concurrency"] == 2 and values["fallback_local"] is False
    assert ("render_clip_concurrency", None, 2) in seen and ("fallback_local", True, False) in seen
    assert live.cluster_cap() == 2 and live.clip_concurrency() == 2
    other.set("render_clip_concurrency", "500")
    live.refresh(force=True)
    cap = live.cluster_cap()
    assert cap is not None and cap <= 16 and live.clip_concurrency() == 4  # clamped to the safe ceiling
    with pytest.raises(UnknownKey):
        other.set("render_clip_concurency", "3")
    with pytest.raises(ValueError, match="at least 1"):
        other.set("render_clip_concurrency", "0")
    other.unset("render_clip_concurrency")
    assert live.refresh(force=True)["render_clip_concurrency"] is None
