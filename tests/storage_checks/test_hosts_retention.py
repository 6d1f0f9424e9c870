"""Outside audit G (each test failed on the code before its fix).

Several hosts (each its own CLIPLINE_WORK_DIR) on one shared file:// store and one job
store; retention run by one of them (the sweep runs once per interval, cluster-wide)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis

from pipeline import assembly, retention
from pipeline.models import JobStatus, parse_request
from tests.stubs import stub_context


def request(job_id: str):  # type: ignore[no-untyped-def]
    return parse_request(
        {
            "job_id": job_id,
            "mix_request_id": "req-g",
            "lines": [
                {
                    "text": "a",
                    "start_ms": 0,
                    "end_ms": 1000,
                    "clip": {"video_id": "v", "start_ms": 0, "end_ms": 1000},
                }
            ],
        }
    )


def test_retention_and_each_hosts_own_sweep_leave_no_scratch_of_a_removed_job(tmp_path: Path) -> None:
    """A FAILED job keeps its song (work/{job}/audio/track.m4a) and clips in the scratch dir of the host
    that assembled it (assembly.cleanup: KEPT_FOR_RETRY), for a retry. Retention, run by another host's
    sweep, deletes the record and the objects in the store but only *its own* scratch
    (retention.cleanup: ``files.remove_tree(files.job_work_dir(ctx.settings, job.id))``). The
    assembler's copy is then never removed by anything (no record names it any more): disk leaks on
    every host but the sweeper, job after job. README ("Retention: removes ... their work files") and
    'Storage: one host or many' promise otherwise. Right: each host removes the scratch of jobs
    that retention removed (or that no longer exist / have ended), e.g. at its own sweep or start."""
    server = fakeredis.FakeServer()
    shared = f"file://{tmp_path / 'shared'}"
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    common = {"CLIPLINE_STORAGE_URL": shared, "CLIPLINE_DATABASE_URL": db}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    host_a = stub_context(tmp_path / "a", server=server, **common)  # runs the sweep (retention)
    host_b = stub_context(tmp_path / "b", server=server, **common)  # assembled the job
    assert host_a.settings.work_dir != host_b.settings.work_dir
    # Given a job that failed on host B, which kept its song and clips for a retry
    host_a.store.create_or_get(request("jobg-ret"))
    assert host_a.store.advance("jobg-ret", status=JobStatus.FAILED)
    kept = host_b.settings.work_dir / "jobg-ret" / "audio" / "track.m4a"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"m4a" * 1000)
    assembly.cleanup(host_b, "jobg-ret", JobStatus.FAILED)
    assert kept.exists()  # kept for a retry, as designed
    # When retention removes the job (run by host A's sweep)
    removed = retention.cleanup(host_a, 60, now=datetime.now(UTC) + timedelta(hours=1))
    assert [r.job_id for r in removed] == ["jobg-ret"]
    # Then host B's own sweep, once its scratch has been left alone for an hour, removes it too
    later = kept.parent.parent.stat().st_mtime + retention.ORPHAN_AFTER_S + 1
    assert retention.remove_orphan_scratch(host_b, now=later - 2 * retention.ORPHAN_AFTER_S) == []  # too soon
    assert retention.remove_orphan_scratch(host_b, now=later) == ["jobg-ret"]
    # and nothing of it is left on any host
    left = sorted(str(p.relative_to(tmp_path)) for p in (host_b.settings.work_dir / "jobg-ret").rglob("*"))
    assert not kept.exists(), f"left on host B after retention removed the job: {left}"
