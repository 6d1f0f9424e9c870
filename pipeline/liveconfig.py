"""Settings that change at run time without a restart (FR-008), held in one Redis hash.

``clipline config set render_clip_concurrency 2`` writes the hash; every
worker re-reads it at most every ``REFRESH_S`` seconds and logs
``config.reloaded`` with the old and new values when something changed.

``render_clip_concurrency`` set here is a cluster-wide cap: it limits the clips
running across all clip and fallback workers together. Unset, each worker is
limited only by its own cap (``RENDER_CLIP_CONCURRENCY`` / ``--concurrency``:
its threads and prefetch), so adding worker processes adds capacity. The
fallback policy keys fall back to the environment's settings when unset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from . import keys
from .settings import Settings, clamp_concurrency

log = structlog.get_logger("clipline.config")

REFRESH_S = 2.0


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _concurrency(value: str) -> int:
    n = int(value)
    if n < 1:
        raise ValueError("must be at least 1")
    return n


@dataclass(frozen=True)
class LiveKey:
    name: str
    parse: Callable[[str], Any]
    default: Callable[[Settings], Any]
    help: str


LIVE_KEYS: dict[str, LiveKey] = {
    k.name: k
    for k in (
        LiveKey(
            "render_clip_concurrency",
            _concurrency,
            lambda s: None,
            "cluster-wide cap on clips cut at once (unset: each worker's own cap only)",
        ),
        LiveKey(
            "fallback_local", _bool, lambda s: s.fallback_local, "cut from the local copy when HLS fails"
        ),
        LiveKey(
            "fallback_placeholder",
            _bool,
            lambda s: s.fallback_placeholder,
            "make a black placeholder when nothing else works",
        ),
    )
}


class UnknownKey(KeyError):
    """Not a live setting."""


def parse_value(key: str, value: str) -> Any:
    if key not in LIVE_KEYS:
        raise UnknownKey(f"{key!r} is not a live setting; live settings: {', '.join(LIVE_KEYS)}")
    try:
        return LIVE_KEYS[key].parse(value)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from exc


class LiveConfig:
    """Current live values: Redis first, then the environment. Thread-safe, cached for REFRESH_S."""

    def __init__(
        self, settings: Settings, r: redis.Redis, *, on_change: Callable[[str, Any, Any], None] | None = None
    ):
        self.settings = settings
        self.r = r
        self.on_change = on_change
        self._values: dict[str, Any] = {k: spec.default(settings) for k, spec in LIVE_KEYS.items()}
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._warned_for: int | None = None

    def set(self, key: str, value: str) -> Any:
        parsed = parse_value(key, value)
        self.r.hset(keys.config_hash(), key, str(parsed).lower() if isinstance(parsed, bool) else str(parsed))
        return parsed

    def unset(self, key: str) -> None:
        if key not in LIVE_KEYS:
            raise UnknownKey(f"{key!r} is not a live setting; live settings: {', '.join(LIVE_KEYS)}")
        self.r.hdel(keys.config_hash(), key)

    def stored(self) -> dict[str, str]:
        raw = self.r.hgetall(keys.config_hash())
        return {keys.text(k): keys.text(v) for k, v in raw.items()}

    def refresh(self, force: bool = False) -> dict[str, Any]:
        with self._lock:
            if not force and time.monotonic() - self._read_at < REFRESH_S:
                return dict(self._values)
            try:
                stored = self.stored()
            except redis.RedisError as exc:
                log.warning("config.unreadable", error=str(exc))
                self._read_at = time.monotonic()
                return dict(self._values)
            fresh: dict[str, Any] = {}
            for key, spec in LIVE_KEYS.items():
                try:
                    fresh[key] = spec.parse(stored[key]) if key in stored else spec.default(self.settings)
                except ValueError:
                    log.warning("config.invalid", key=key, value=stored.get(key))
                    fresh[key] = spec.default(self.settings)
            changed = [(k, self._values[k], v) for k, v in fresh.items() if self._values[k] != v]
            self._values, self._read_at = fresh, time.monotonic()
        for key, old, new in changed:
            log.info("config.reloaded", key=key, old=old, new=new)
            if self.on_change:
                self.on_change(key, old, new)
        return dict(fresh)

    def get(self, key: str) -> Any:
        return self.refresh()[key]

    def cluster_cap(self) -> int | None:
        """The cluster-wide clip cap set with ``clipline config set``, clamped; None when not set."""
        requested = self.get("render_clip_concurrency")
        if requested is None:
            self._warned_for = None
            return None
        value, warning = clamp_concurrency(int(requested))
        if warning and self._warned_for != requested:
            log.warning(
                "config.clamped",
                key="render_clip_concurrency",
                requested=requested,
                effective=value,
                message=warning,
            )
        self._warned_for = requested if warning else None
        return value

    def clip_concurrency(self) -> int:
        """What this worker can run at once: its own cap, lowered by any cluster-wide cap."""
        local = clamp_concurrency(self.settings.render_clip_concurrency)[0]
        cap = self.cluster_cap()
        return local if cap is None else min(local, cap)
