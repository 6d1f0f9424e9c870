"""The ``clipline`` console script as an operator meets it: exit codes, one-line errors, JSON on every
outcome under --json, help text, --version, --wait --timeout, and what it prints for a job."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import JobStatus, parse_request
from pipeline.store import JobStore

from .conftest import private_vhost

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIPLINE = str(Path(sys.executable).with_name("clipline"))  # the console script of this environment
CLOSED = "127.0.0.1:1"  # nothing listens on port 1: a service that is down


@pytest.fixture(scope="module")
def own_vhost() -> Iterator[str]:
    """A vhost no worker consumes: a submitted job stays PENDING (and reaches no other test's worker)."""
    with private_vhost("cli") as name:
        yield name


@pytest.fixture
def env(tmp_path: Path, redis_url: str, own_vhost: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))}
    return base | {
        "CLIPLINE_DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db",
        "CLIPLINE_REDIS_URL": redis_url,
        "CLIPLINE_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{own_vhost}",
        "CLIPLINE_WORK_DIR": str(tmp_path / "work"),
        "CLIPLINE_OUTPUT_DIR": str(tmp_path / "output"),
        "CLIPLINE_METRICS_PORT": "0",
        "PYTHONPATH": str(ROOT),
    }


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLIPLINE, *args],
        env=env,
        text=True,
        capture_output=True,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=120,
    )


def last_json(out: str) -> dict[str, Any]:
    lines = out.strip().splitlines()
    assert lines, "nothing on stdout"
    obj: dict[str, Any] = json.loads(lines[-1])
    return obj


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    """The command's stderr is exactly one line starting with 'error: ' (no traceback)."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def request(job_id: str, **extra: Any) -> dict[str, Any]:
    line = {
        "text": "a",
        "start_ms": 0,
        "end_ms": 1000,
        "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000},
    }
    return {"job_id": job_id, "mix_request_id": "req-cli", "lines": [line], **extra}


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_submit_of_a_missing_unreadable_or_wrong_file_exits_2_with_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    cases = {
        str(tmp_path / "nope.json"): "cannot read",
        write(tmp_path, "empty.json", ""): "is empty",
        write(tmp_path, "cut.json", '{"job_id": "x"'): "is not valid JSON: Expecting ',' delimiter at line 1",
        write(tmp_path, "list.json", "[1, 2]"): "holds a JSON list, not a render request",
        write(tmp_path, "deep.json", '{"lines": ' + "[" * 100_000 + "]" * 100_000 + "}"): "nested too deep",
        write(tmp_path, "digits.json", '{"lines": [{"start_ms": ' + "9" * 5000 + "}]}"): "is not valid JSON",
        write(tmp_path, "nan.json", '{"lines": [], "metadata": {"x": NaN}}'): "NaN is not a JSON number",
        write(tmp_path, "twice.json", '{"lines": [], "lines": []}'): "the key 'lines' is given twice",
    }
    for path, says in cases.items():
        res = run(env, "submit", path)
        assert res.returncode == 2, (path, res.stderr)
        assert says in one_line_error(res) and Path(path).name in res.stderr
        assert res.stdout == ""
        # Under --json the same outcome is one JSON object on stdout
        res = run(env, "submit", path, "--json")
        assert res.returncode == 2
        error = last_json(res.stdout)["error"]
        assert error["code"] == "request_invalid" and says in error["message"] and error["field"] == "file"


def test_a_request_without_a_job_id_is_accepted_not_called_invalid_json(
    env: dict[str, str], tmp_path: Path
) -> None:
    body = request("unused")
    del body["job_id"]
    res = run(env, "submit", write(tmp_path, "nojob.json", json.dumps(body)), "--json")
    assert res.returncode == 0, res.stderr
    job = last_json(res.stdout)
    assert job["status"] == "PENDING" and job["job_id"].startswith("job-")


def test_validation_errors_unknown_jobs_and_conflicts_are_json_under_json(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = request("cli-bad")
    bad["lines"][0]["end_ms"] = 0
    res = run(env, "submit", write(tmp_path, "bad.json", json.dumps(bad)), "--json")
    assert res.returncode == 2
    error = last_json(res.stdout)["error"]
    assert error["code"] == "request_invalid" and error["field"].startswith("lines")
    one_line_error(res)

    for args in (("status", "no-such-job", "--json"), ("retry", "no-such-job", "--json")):
        res = run(env, *args)
        assert res.returncode == 2, res.stderr
        assert last_json(res.stdout)["error"]["code"] == "job_not_found"

    ok = request("cli-conflict")
    assert run(env, "submit", write(tmp_path, "c1.json", json.dumps(ok))).returncode == 0
    ok["mix_request_id"] = "another"
    res = run(env, "submit", write(tmp_path, "c2.json", json.dumps(ok)), "--json")
    assert res.returncode == 2 and last_json(res.stdout)["error"]["code"] == "job_conflict"

    # A usage error is JSON too when --json was asked for
    res = run(env, "jobs", "--limit", "many", "--json")
    assert res.returncode == 2 and last_json(res.stdout)["error"]["code"] == "usage"


def test_infrastructure_down_exits_3_naming_what(env: dict[str, str], tmp_path: Path) -> None:
    # Broker down: the job is recorded, the message says so and names the job
    res = run(
        env | {"CLIPLINE_BROKER_URL": f"amqp://guest:guest@{CLOSED}/%2F"},
        "submit",
        write(tmp_path, "r.json", json.dumps(request("cli-nobroker"))),
        "--json",
    )
    assert res.returncode == 3, res.stderr
    error = last_json(res.stdout)["error"]
    assert error["code"] == "broker_unavailable" and "cli-nobroker is recorded as PENDING" in error["message"]
    one_line_error(res)
    assert len(res.stdout.strip().splitlines()) == 1  # no log lines of pika on stdout

    res = run(env | {"CLIPLINE_REDIS_URL": f"redis://{CLOSED}/0"}, "config", "get", "fallback_local")
    assert res.returncode == 3 and "redis unavailable" in one_line_error(res)

    res = run(env | {"CLIPLINE_DATABASE_URL": f"postgresql+psycopg://clipline@{CLOSED}/x"}, "jobs", "--json")
    assert res.returncode == 3
    assert last_json(res.stdout)["error"]["code"] == "database_unavailable"
    one_line_error(res)


def test_submit_wait_timeout_exits_4_with_the_job_still_running(env: dict[str, str], tmp_path: Path) -> None:
    # No worker consumes this vhost: the job stays PENDING
    path = write(tmp_path, "r.json", json.dumps(request("cli-timeout")))
    res = run(env, "submit", path, "--wait", "--timeout", "1", "--json")
    assert res.returncode == 4, res.stderr
    job = last_json(res.stdout)
    assert (job["job_id"], job["status"]) == ("cli-timeout", "PENDING")
    assert "still PENDING after 1s" in res.stderr and "clipline status cli-timeout --watch" in res.stderr
    res = run(env, "submit", path, "--timeout", "1")
    assert res.returncode == 2 and "--timeout needs --wait" in one_line_error(res)


def test_status_and_stats_print_for_people(env: dict[str, str]) -> None:
    store = JobStore(env["CLIPLINE_DATABASE_URL"])
    store.create_or_get(parse_request(request("cli-people")))
    res = run(env, "status", "cli-people")
    assert res.returncode == 0, res.stderr
    assert "None" not in res.stdout
    assert re.search(r"^error\s+-$", res.stdout, re.M) and re.search(r"^progress\s+0%$", res.stdout, re.M)

    store.advance("cli-people", status=JobStatus.COMPLETED_WITH_GAPS)
    store.engine.dispose()
    res = run(env, "stats")
    assert res.returncode == 0, res.stderr
    assert "{" not in res.stdout and "'" not in res.stdout, res.stdout
    assert "ended COMPLETED_WITH_GAPS 1" in res.stdout


def test_help_and_version(env: dict[str, str]) -> None:
    res = run(env, "--version")
    assert res.returncode == 0 and re.fullmatch(
        r"clipline \S+ \(database schema revision \d{4}\)\n", res.stdout
    )

    top = run(env, "--help")
    assert top.returncode == 0
    assert "``" not in top.stdout and "exit codes:" in top.stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "4 "):
        assert re.search(rf"^  {code}", top.stdout, re.M), code

    sub = run(env, "submit", "--help")
    assert sub.returncode == 0
    assert "REQUEST.json" in sub.stdout and "the render request (a JSON object); - reads stdin" in sub.stdout
    assert (
        "--timeout S" in sub.stdout
        and "exit codes:" in sub.stdout
        and "infrastructure unavailable" in sub.stdout
    )
