"""``POST /jobs/{id}/retry`` / ``clipline retry`` while the broker is down: README and CONTRACTS say
``503 unavailable``: "try again", exit 3 "retry once it is back". Trying again works: the retry's
attempt is recorded before its plan is sent, and the same retry of that attempt (still PENDING)
re-sends the plan without starting another attempt."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from clipline.api import create_app
from pipeline.models import parse_request
from pipeline.settings import Settings, load_settings
from pipeline.store import JobStore

from .helpers import DEAD_BROKER, clipline, one_line_request, scratch_env


def _cancelled_job(env: dict[str, str], job_id: str) -> None:
    store = JobStore(env["CLIPLINE_DATABASE_URL"])
    store.create_or_get(parse_request(one_line_request(job_id)))
    done = clipline(env, "cancel", job_id)
    assert done.returncode == 0, done.stderr


def _settings(env: dict[str, str]) -> Settings:
    return load_settings({k: v for k, v in env.items() if k.startswith("CLIPLINE_")})


def test_api_retry_answered_503_can_be_tried_again_and_sends_the_recorded_attempt(
    tmp_path: Path, redis_url: str, vhost: str
) -> None:
    """Before: with the broker down, ``POST /jobs/{id}/retry`` of a CANCELLED job answered 503
    ``unavailable`` ("try again shortly") after pipeline/jobs.py:retry had committed attempt 2
    (PENDING); the retry the answer asked for was then 409 ``job_not_retryable`` ("still PENDING"),
    and only the reconciler would have sent the attempt. Now: trying again while the broker is down
    is 503 again, and once it is back 202, the same attempt 2 (no attempt 3)."""
    env = scratch_env(tmp_path, CLIPLINE_REDIS_URL=redis_url)
    _cancelled_job(env, "af-retry-1")
    down = _settings(env)
    assert down.broker_url == DEAD_BROKER
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        first = client.post("/jobs/af-retry-1/retry")
        assert first.status_code == 503, first.text
        assert first.json()["error"]["code"] == "unavailable"
        again = client.post("/jobs/af-retry-1/retry")  # the broker is still down: 503 again, not 409
        assert again.status_code == 503, (again.status_code, again.text)
    env["CLIPLINE_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    with TestClient(create_app(_settings(env)), raise_server_exceptions=False) as client:
        back = client.post("/jobs/af-retry-1/retry")
        assert back.status_code == 202, back.text
        assert back.json()["attempt"] == 2 and back.json()["status"] == "PENDING", back.json()


def test_cli_retry_with_the_broker_down_says_the_attempt_is_recorded_and_can_be_run_again(
    tmp_path: Path, redis_url: str, vhost: str
) -> None:
    """Before: ``clipline retry JOB --json`` with the broker down exited 3 ``broker_unavailable``
    with no word that the attempt was already recorded (clipline/cli.py:cmd_retry passed the bare
    ``enqueue_plan``), and the same command again exited 2 ``job_state_conflict`` ("still PENDING").
    Now: the message says the attempt is recorded and to run the same retry again; again with the
    broker down it is exit 3 again; once the broker is back it is exit 0, the same attempt 2."""
    env = scratch_env(tmp_path, CLIPLINE_REDIS_URL=redis_url)
    _cancelled_job(env, "af-retry-2")
    first = clipline(env, "retry", "af-retry-2", "--json")
    assert first.returncode == 3, (first.returncode, first.stdout[-300:], first.stderr[-300:])
    message = json.loads(first.stdout.strip().splitlines()[-1])["error"]["message"]
    assert "recorded" in message and "clipline retry af-retry-2" in message, message
    again = clipline(env, "retry", "af-retry-2", "--json")
    assert again.returncode == 3, (again.returncode, again.stdout[-300:])
    env["CLIPLINE_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    back = clipline(env, "retry", "af-retry-2", "--json")
    assert back.returncode == 0, (back.returncode, back.stdout[-300:], back.stderr[-300:])
    assert json.loads(back.stdout.strip().splitlines()[-1])["attempt"] == 2
