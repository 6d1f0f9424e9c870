"""Outside audit E (each test failed on the code before its fix).

a NUL from the video API's answer reaches PostgreSQL."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from pipeline import clipstage, planning
from pipeline.store import JobStore
from tests.integration.conftest import Stack, build_request, new_job_id
from tests.integration.test_stages import make_ctx
from tests.loopback import serving

pytestmark = pytest.mark.integration


class NulApi(BaseHTTPRequestHandler):
    """A video API whose answer's hls.video_url holds a NUL (JSON ``\\u0000``)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"hls": {"video_url": "http://127.0.0.1:9/v\u0000x/index.m3u8"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_nul_in_the_video_apis_url_is_stored_escaped_on_postgresql(
    stack: Stack, pg_url: str
) -> None:
    """The video API answers ``hls.video_url`` with a ``\\u0000`` in it. fetch refuses the URL (right),
    but the SourceInvalid message quotes it raw (``hop.named(url)``, not ``repr``), so the clip's reason
    holds a NUL byte. With the fallback placeholder disabled (CLIPLINE_FALLBACK_PLACEHOLDER=false, a
    documented policy), ``clipstage.run_fallback`` records the slot as failed and appends that reason to
    the job's error_log: PostgreSQL refuses it (psycopg.DataError "text fields cannot contain NUL"), so
    run_fallback raises instead of returning Done; in a worker the fallback actor raises on each of its
    3 retries and the message is dead-lettered: the slot never gets an outcome and the job does not end
    (left to the reconciler). Right: Done (outcome failed), the job's error storable (NUL escaped or
    dropped, as ``store._storable`` guards for lookups).
    Cause: pipeline/fetch.py:_open (SourceInvalid(f"{hop.named(url, hops)}: {exc}") with the raw URL),
    pipeline/clipstage.py:_failed -> pipeline/store.py:advance/_error_line (no NUL handling)."""
    with serving(NulApi) as api:
        ctx = make_ctx(
            stack,
            CLIPLINE_DATABASE_URL=pg_url,
            CLIPLINE_FALLBACK_PLACEHOLDER="false",
            CLIPLINE_FALLBACK_LOCAL="false",
            TWELVELABS_API_URL=api + "/v1.3",
        )
        job_id = new_job_id("aenul")
        request = build_request(
            job_id, stack.cdn, [("v_nul", 0, 1000, False)], line_ms=lambda i: 1000, audio=False
        )
        planning.fanned_out(ctx, planning.plan(ctx, request))
        step = clipstage.run_clip(ctx, job_id, 0, attempt=1, max_attempts=1)
        assert isinstance(step, clipstage.Fallback), step
        done = clipstage.run_fallback(ctx, job_id, 0, step.reason)
        assert isinstance(done, clipstage.Done) and done.record.outcome == "failed", done
        job = JobStore(pg_url).get(job_id)
        assert job is not None and "v_nul" in (job.error_log or "")
