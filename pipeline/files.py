"""Per-job paths, isolated by job id, and atomic writes (temporary name, then rename)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from .settings import Settings


def job_work_dir(settings: Settings, job_id: str) -> Path:
    return settings.work_dir / job_id


def clip_path(settings: Settings, job_id: str, index: int) -> Path:
    return job_work_dir(settings, job_id) / "clips" / f"{index:04d}.mp4"


def clip_record_path(settings: Settings, job_id: str, index: int) -> Path:
    return clip_path(settings, job_id, index).with_suffix(".json")


def job_output_dir(settings: Settings, job_id: str) -> Path:
    return settings.output_dir / job_id


def temp_name(path: Path) -> Path:
    """A sibling name unique to this process and thread; same filesystem, so rename is atomic."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def find_local_copy(settings: Settings, video_id: str) -> Path | None:
    for ext in (".mp4", ".mov", ".mkv"):
        candidate = settings.media_dir / f"{video_id}{ext}"
        if candidate.is_file():
            return candidate
    return None


def under(root: Path, relative: str) -> Path:
    """``root / relative`` resolved, refusing anything that escapes ``root``."""
    base = root.resolve()
    target = (base / relative).resolve()
    if base != target and base not in target.parents:
        raise ValueError(f"{relative!r} escapes {root}")
    return target


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
