"""GET /jobs/{id}/video and /poster through a real uvicorn, on both stores; the status object's URLs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clipline.dev.s3 import LoopbackS3
from clipline.dev.samples import count_frames

from .conftest import Stack, build_request, new_job_id
from .test_api import TOKEN, running_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    with LoopbackS3("clipline-api", log=tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


def render(stack: Stack, api: httpx.Client) -> dict[str, object]:
    job_id = new_job_id("media")
    body = build_request(
        job_id, stack.cdn, [("v_a", 1000 * i, 1000 * i + 900, True) for i in range(4)], line_ms=lambda i: 1000
    )
    assert api.post("/jobs", json=body).status_code == 202
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, object] = api.get(f"/jobs/{job_id}").json()
        if job["status"] in ("COMPLETED", "COMPLETED_WITH_GAPS", "FAILED"):
            return job
        time.sleep(0.2)
    raise TimeoutError(job_id)


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_video_and_poster_downloads(stack: Stack, backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "s3":
        server: LoopbackS3 = request.getfixturevalue("s3")
        stack.env.update({**server.env(), "CLIPLINE_S3_ABORT_UPLOADS_AFTER_S": "0"})
    stack.start_workers("--stage", "all", "--concurrency", "2")
    public = "https://clips.example.test/api"  # where people reach the API (a proxy in front of it)
    stack.env["CLIPLINE_API_PUBLIC_URL"] = public
    with running_api(stack) as api:
        base = str(api.base_url).rstrip("/")
        # Before the job has a video: 404; unknown job: 404; no token: 401
        assert api.get("/jobs/nope/video").status_code == 404
        assert httpx.get(f"{base}/jobs/nope/video").status_code == 401
        job = render(stack, api)
        assert job["status"] == "COMPLETED", job
        job_id = str(job["job_id"])
        assert httpx.get(f"{base}/jobs/{job_id}/video").status_code == 401

        # The whole video, with its type, length and ETag
        full = api.get(f"/jobs/{job_id}/video")
        assert full.status_code == 200
        assert full.headers["content-type"] == "video/mp4"
        assert int(full.headers["content-length"]) == len(full.content) > 1000
        assert full.headers["accept-ranges"] == "bytes"
        etag = full.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        size, data = len(full.content), full.content
        video = stack.tmp / f"{job_id}.mp4"
        video.write_bytes(data)
        assert count_frames(video) == 120

        # Ranges: a slice, a suffix, an open end, past the end; If-Range, If-None-Match, HEAD
        part = api.get(f"/jobs/{job_id}/video", headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == data[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{size}"
        assert part.headers["content-length"] == "1000"
        tail = api.get(f"/jobs/{job_id}/video", headers={"Range": "bytes=-64"})
        assert tail.status_code == 206 and tail.content == data[-64:]
        rest = api.get(f"/jobs/{job_id}/video", headers={"Range": f"bytes={size - 10}-"})
        assert rest.status_code == 206 and rest.content == data[-10:]
        past = api.get(f"/jobs/{job_id}/video", headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
        stale = api.get(f"/jobs/{job_id}/video", headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == data
        assert api.get(f"/jobs/{job_id}/video", headers={"If-None-Match": etag}).status_code == 304
        head = api.head(f"/jobs/{job_id}/video")
        assert head.status_code == 200 and head.headers["content-length"] == str(size) and head.content == b""

        # A player reads it over HTTP with range requests (the MP4 index is at the front or the back)
        probe = subprocess.run(
            [
                "ffprobe", "-v", "error", "-headers", f"Authorization: Bearer {TOKEN}\r\n",
                "-count_packets", "-select_streams", "v:0", "-show_entries", "stream=nb_read_packets",
                "-of", "csv=p=0", f"{base}/jobs/{job_id}/video",
            ],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert probe.stdout.strip() == "120"

        # The poster: a JPEG frame from the middle
        poster = api.get(f"/jobs/{job_id}/poster")
        assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
        assert poster.content[:2] == b"\xff\xd8"

        # The status object's URLs: API routes with files, presigned with S3 (no token needed)
        if backend == "file":
            assert job["output_url"] == f"{public}/jobs/{job_id}/video"
            assert job["poster_url"] == f"{public}/jobs/{job_id}/poster"
            assert job["report_url"] == f"{public}/jobs/{job_id}/report"
        else:
            assert "X-Amz-Signature=" in str(job["output_url"])
            assert httpx.get(str(job["output_url"])).content == data
            assert httpx.get(str(job["poster_url"])).content == poster.content
            assert httpx.get(str(job["report_url"])).json()["job_id"] == job_id
            assert Path(str(job["output_path"])).name == "final.mp4"
            assert str(job["output_path"]).startswith("s3://")
        # The report route reads through the store too
        assert api.get(f"/jobs/{job_id}/report").json()["job_id"] == job_id
