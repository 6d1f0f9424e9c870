"""Object keys, built only from validated ids: nothing in a request chooses a bucket or a key.

Two areas, each with one folder per job:

    work/{job_id}/clips/{index:04d}.mp4      a finished clip (and .json, its outcome; .logged, a marker)
    output/{job_id}/final.mp4                the results: final.mp4, report.json, poster.jpg
                                             (and final.attempt-N.mp4, report.attempt-N.json of a retry)

The file backend maps ``work`` to CLIPLINE_WORK_DIR and ``output`` to
CLIPLINE_OUTPUT_DIR by default, so on one host the keys are the paths that
clipline always used; S3 puts them under ``s3://bucket/prefix/``.
"""

from __future__ import annotations

import re

WORK, OUTPUT = "work", "output"
AREAS = (WORK, OUTPUT)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_OUTPUT_NAME = re.compile(r"^(final|report|poster)(\.attempt-[0-9]{1,4})?\.(mp4|json|jpg)$")
_CLIP_SUFFIXES = (".mp4", ".json", ".logged")

FINAL, REPORT, POSTER = "final.mp4", "report.json", "poster.jpg"

CONTENT_TYPES = {".mp4": "video/mp4", ".json": "application/json", ".jpg": "image/jpeg"}


def _job(job_id: str) -> str:
    if not isinstance(job_id, str) or not _ID.match(job_id):
        raise ValueError(f"job id {job_id!r} is not a valid id: no storage key is built from it")
    return job_id


def job_work(job_id: str) -> str:
    """The prefix of every clip of the job (ends with '/')."""
    return f"{WORK}/{_job(job_id)}/"


def job_output(job_id: str) -> str:
    """The prefix of the job's results (ends with '/')."""
    return f"{OUTPUT}/{_job(job_id)}/"


def clip(job_id: str, index: int, suffix: str = ".mp4") -> str:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 100_000:
        raise ValueError(f"clip index {index!r} is not a slot number")
    if suffix not in _CLIP_SUFFIXES:
        raise ValueError(f"clip suffix {suffix!r} is not one of {_CLIP_SUFFIXES}")
    return f"{job_work(job_id)}clips/{index:04d}{suffix}"


def clip_record(job_id: str, index: int) -> str:
    return clip(job_id, index, ".json")


def clip_logged(job_id: str, index: int) -> str:
    return clip(job_id, index, ".logged")


def output(job_id: str, name: str) -> str:
    if not _OUTPUT_NAME.match(name):
        raise ValueError(f"{name!r} is not a result name (final.mp4, report.json, poster.jpg)")
    return f"{job_output(job_id)}{name}"


def attempt_name(name: str, attempt: int) -> str:
    """final.mp4 -> final.attempt-2.mp4: what a retry keeps of an earlier attempt."""
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.attempt-{int(attempt)}.{ext}"


def content_type(key: str) -> str:
    for ext, ctype in CONTENT_TYPES.items():
        if key.endswith(ext):
            return ctype
    return "application/octet-stream"


def split(key: str) -> tuple[str, str]:
    """'work/j1/clips/0001.mp4' -> ('work', 'j1/clips/0001.mp4'); refuses keys outside the two areas."""
    area, _, rest = key.partition("/")
    if area not in AREAS or not rest or rest.startswith("/") or ".." in rest.split("/"):
        raise ValueError(f"{key!r} is not a storage key (work/... or output/...)")
    return area, rest


def job_of(key: str) -> str | None:
    """The job id a key belongs to, or None when it is not under a job's folder."""
    try:
        _, rest = split(key)
    except ValueError:
        return None
    job = rest.split("/", 1)[0]
    return job if _ID.match(job) else None
