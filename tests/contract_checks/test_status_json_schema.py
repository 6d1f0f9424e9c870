"""`clipline status --json` against docs/schemas/v1/job.schema.json (CONTRACTS.md: that schema is "the job
status object: GET /jobs/{id}, clipline status --json, submit --json")."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import private_vhost

from .helpers import base_env, clipline, last_json, schema_errors

pytestmark = pytest.mark.integration


@pytest.fixture
def own_vhost() -> Iterator[str]:
    """A vhost no worker consumes: the submitted job stays PENDING and reaches no other test's worker."""
    with private_vhost("audit-c") as name:
        yield name


def test_status_json_validates_against_the_published_job_schema(
    tmp_path: Path, redis_url: str, own_vhost: str
) -> None:
    """`clipline status --json` (and `submit --json`) print a status object without `previous_attempts`,
    which docs/schemas/v1/job.schema.json lists as required, so the documented output fails its own schema."""
    env = base_env(
        CLIPLINE_DATABASE_URL=f"sqlite:///{tmp_path}/jobs.db",
        CLIPLINE_REDIS_URL=redis_url,
        CLIPLINE_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{own_vhost}",
        CLIPLINE_WORK_DIR=str(tmp_path / "work"),
        CLIPLINE_OUTPUT_DIR=str(tmp_path / "output"),
        CLIPLINE_METRICS_PORT="0",
    )
    job_id = f"audit-c-{secrets.token_hex(4)}"
    line = {
        "text": "a",
        "start_ms": 0,
        "end_ms": 1000,
        "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000},
    }
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"job_id": job_id, "lines": [line]}))

    submitted = clipline(env, "submit", str(request), "--json")
    assert submitted.returncode == 0, submitted.stderr
    status = clipline(env, "status", job_id, "--json")
    assert status.returncode == 0, status.stderr
    obj = last_json(status.stdout)
    assert obj["job_id"] == job_id and obj["status"] == "PENDING"

    assert schema_errors("job.schema.json", obj) == []
