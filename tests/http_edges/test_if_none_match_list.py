"""Outside audit, fixed since: If-None-Match on the result downloads compares the raw header with one ETag."""

from __future__ import annotations

from pathlib import Path

from .harness import api, completed_job, settings_for


def test_if_none_match_with_a_list_or_a_weak_tag_is_not_modified(tmp_path: Path) -> None:
    """GET /jobs/{id}/video answered 200 with the whole file, not 304, when If-None-Match lists several
    tags or gives the current one as weak (RFC 9110 13.1.2: a list, weak comparison)."""
    settings = settings_for(tmp_path)
    video = settings.output_dir / "cached" / "final.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\x00" * 4096)
    completed_job(settings, "cached", output_path=str(video))
    with api(settings) as client:
        etag = client.get("/jobs/cached/video").headers["etag"]
        assert client.get("/jobs/cached/video", headers={"If-None-Match": etag}).status_code == 304
        listed = client.get("/jobs/cached/video", headers={"If-None-Match": f'"older-one", {etag}'})
        assert listed.status_code == 304, (listed.status_code, len(listed.content))
        weak = client.get("/jobs/cached/video", headers={"If-None-Match": f"W/{etag}"})
        assert weak.status_code == 304, (weak.status_code, len(weak.content))
