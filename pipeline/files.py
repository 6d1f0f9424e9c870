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


def clip_logged_path(settings: Settings, job_id: str, index: int) -> Path:
    """Marker: the clip's final status was logged and counted (so a restored record is not logged twice)."""
    return clip_path(settings, job_id, index).with_suffix(".logged")


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


def remove_all_but(root: Path, keep: tuple[str, ...]) -> None:
    """Remove everything under ``root`` except the given relative paths (and the dirs leading to them)."""
    kept = {(root / k).resolve() for k in keep}
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        resolved = path.resolve()
        if resolved in kept or any(k in resolved.parents for k in kept):
            continue
        if any(resolved in k.parents for k in kept):
            continue  # a directory on the way to something kept
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
