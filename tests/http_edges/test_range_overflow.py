"""Outside audit, fixed since: a Range header with a number of more than 4300 digits."""

from __future__ import annotations

from pathlib import Path

from .harness import api, completed_job, settings_for


def test_range_with_an_overlong_number_is_not_a_server_error(tmp_path: Path) -> None:
    """``Range: bytes=<5000 digits>-`` on GET /jobs/{id}/video answered 500 internal_error, because
    byte_range calls int() on a string over Python's 4300-digit limit, instead of 416 (past the end)."""
    settings = settings_for(tmp_path)
    video = settings.output_dir / "ranged" / "final.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(bytes(range(256)) * 4)
    completed_job(settings, "ranged", output_path=str(video))
    with api(settings) as client:
        assert client.get("/jobs/ranged/video", headers={"Range": "bytes=2000-"}).status_code == 416
        huge = client.get("/jobs/ranged/video", headers={"Range": "bytes=" + "9" * 5000 + "-"})
        assert huge.status_code == 416, huge.text[:300]
        assert huge.headers["content-range"] == "bytes */1024"
