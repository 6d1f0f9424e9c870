"""One settings object, read from the environment once (``get_settings()``).

Variable names are the contract in DESIGN.md. A ``CLIPLINE_*`` variable that
is not a known setting is an error, so a misspelt name never goes unnoticed.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AmqpDsn,
    AnyUrl,
    Field,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ClipLineError, FFmpegMissing
from .webhook_signing import secret_key

#: x264's presets, fastest first.
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
)
#: The levels CLIPLINE_LOG_LEVEL may name.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: How the broker and Redis URLs must look (field -> pydantic URL type); redis-py reads unix:// too.
_URLS: dict[str | None, TypeAdapter[Any]] = {
    "broker_url": TypeAdapter(AmqpDsn),
    "redis_url": TypeAdapter(Annotated[AnyUrl, UrlConstraints(allowed_schemes=["redis", "rediss", "unix"])]),
}
#: A hard ceiling on clip concurrency, whatever the machine (spec 000 assumes <= 16).
MAX_CLIP_CONCURRENCY = 16


def _env(name: str, default: Any = None, **kw: Any) -> Any:
    return Field(default, validation_alias=AliasChoices(name), **kw)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, frozen=True)

    broker_url: str = _env("CLIPLINE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    redis_url: str = _env("CLIPLINE_REDIS_URL", "redis://127.0.0.1:6379/0")
    database_url: str = _env("CLIPLINE_DATABASE_URL", "sqlite:///./clipline.db")
    work_dir: Path = _env("CLIPLINE_WORK_DIR", Path("./work"))
    output_dir: Path = _env("CLIPLINE_OUTPUT_DIR", Path("./output"))
    media_dir: Path = _env("CLIPLINE_MEDIA_DIR", Path("./media"))
    twelvelabs_api_url: str = _env("TWELVELABS_API_URL", "https://api.twelvelabs.io/v1.3")
    twelvelabs_api_key: str | None = _env("TWELVELABS_API_KEY")
    twelvelabs_index_id: str | None = _env("TWELVELABS_INDEX_ID")
    render_clip_concurrency: int = _env("RENDER_CLIP_CONCURRENCY", 4, ge=1)
    ffmpeg: str = _env("CLIPLINE_FFMPEG", "ffmpeg")

    # Retries of the clip stage: attempts = 1 + clip_max_retries. Dramatiq waits min_backoff x 2^n
    # (n = 0, 1, ...; x1-2 jitter; past max_backoff, 0.5-1 x max_backoff) before retry n + 1: with 5
    # retries and the bounds below, a transient failure is retried for 15.5-25 s before the fallback
    # (3 retries: 3.5-7 s, shorter than CDN blips the chaos soak makes; the waits are delayed messages,
    # not worker slots).
    clip_max_retries: int = _env("CLIPLINE_CLIP_MAX_RETRIES", 5, ge=0, le=10)
    retry_min_backoff_ms: int = _env("CLIPLINE_RETRY_MIN_BACKOFF_MS", 500, ge=10)
    retry_max_backoff_ms: int = _env("CLIPLINE_RETRY_MAX_BACKOFF_MS", 10_000, ge=10)
    ffmpeg_timeout_s: float = _env("CLIPLINE_FFMPEG_TIMEOUT_S", 120.0, gt=0)
    assemble_timeout_s: float = _env("CLIPLINE_ASSEMBLE_TIMEOUT_S", 600.0, gt=0)
    http_timeout_s: float = _env("CLIPLINE_HTTP_TIMEOUT_S", 10.0, gt=0)
    # While a clip encodes, its worker fetches the segments of the job's next slots (0: off).
    prefetch_slots: int = _env("CLIPLINE_PREFETCH_SLOTS", 4, ge=0, le=32)
    api_max_retry_after_s: float = _env("CLIPLINE_API_MAX_RETRY_AFTER_S", 30.0, ge=0)
    max_lines: int = _env("CLIPLINE_MAX_LINES", 500, ge=1)
    max_time_ms: int = _env("CLIPLINE_MAX_TIME_MS", 4 * 3600 * 1000, ge=1000)
    allowed_hosts: str = _env("CLIPLINE_ALLOWED_HOSTS", "")
    # Outbound requests (pipeline/netguard): loopback/private/link-local addresses are refused unless on.
    allow_private_networks: bool = _env("CLIPLINE_ALLOW_PRIVATE_NETWORKS", False)
    # Every download ends within its deadline and size cap (transient: the clip retries, then falls back).
    http_deadline_s: float = _env("CLIPLINE_HTTP_DEADLINE_S", 60.0, gt=0)
    max_segment_bytes: int = _env("CLIPLINE_MAX_SEGMENT_BYTES", 64 * 2**20, ge=1024)
    max_playlist_bytes: int = _env("CLIPLINE_MAX_PLAYLIST_BYTES", 4 * 2**20, ge=1024)
    max_api_response_bytes: int = _env("CLIPLINE_MAX_API_RESPONSE_BYTES", 2**20, ge=1024)
    audio_deadline_s: float = _env("CLIPLINE_AUDIO_DEADLINE_S", 300.0, gt=0)
    max_audio_bytes: int = _env("CLIPLINE_MAX_AUDIO_BYTES", 200 * 2**20, ge=1024)
    api_token: str | None = _env("CLIPLINE_API_TOKEN")
    # The web page's login: a session lasts this long, then the page asks for the token again.
    web_session_ttl_s: float = _env("CLIPLINE_WEB_SESSION_TTL_S", 8 * 3600.0, gt=0)
    api_max_body_bytes: int = _env("CLIPLINE_API_MAX_BODY_BYTES", 2_000_000, ge=1024)
    source_cache_ttl_s: int = _env("CLIPLINE_SOURCE_CACHE_TTL_S", 3600, ge=0)
    keep_work: bool = _env("CLIPLINE_KEEP_WORK", False)
    x264_preset: str = _env("CLIPLINE_X264_PRESET", "veryfast")
    x264_crf: int = _env("CLIPLINE_X264_CRF", 20, ge=0, le=51)
    fallback_local: bool = _env("CLIPLINE_FALLBACK_LOCAL", True)
    fallback_placeholder: bool = _env("CLIPLINE_FALLBACK_PLACEHOLDER", True)
    metrics_port: int = _env("CLIPLINE_METRICS_PORT", 9191, ge=0, le=65535)
    # A job idle this long is checked; with a sweep every 30 s a stuck job is repaired within 2 minutes.
    reconcile_after_s: float = _env("CLIPLINE_RECONCILE_AFTER_S", 90.0, gt=0)
    reconcile_interval_s: float = _env("CLIPLINE_RECONCILE_INTERVAL_S", 30.0, gt=0)
    # Repairs of one job (one attempt) in a row, without it moving, before the reconciler fails it.
    reconcile_max_repairs: int = _env("CLIPLINE_RECONCILE_MAX_REPAIRS", 5, ge=1, le=100)
    # Webhooks to callback_url: signed (Standard Webhooks) when a secret is set; failures retry with backoff.
    webhook_secret: str | None = _env("CLIPLINE_WEBHOOK_SECRET")
    webhook_timeout_s: float = _env("CLIPLINE_WEBHOOK_TIMEOUT_S", 10.0, gt=0)
    webhook_max_attempts: int = _env("CLIPLINE_WEBHOOK_MAX_ATTEMPTS", 8, ge=1, le=50)
    webhook_backoff_s: float = _env("CLIPLINE_WEBHOOK_BACKOFF_S", 2.0, gt=0)
    webhook_poll_s: float = _env("CLIPLINE_WEBHOOK_POLL_S", 1.0, gt=0)
    # Finished jobs older than this are removed by the workers' sweep (0: only `clipline cleanup`).
    retention_hours: float = _env("CLIPLINE_RETENTION_HOURS", 0.0, ge=0)
    # Cross-job clip cache (pipeline/clip_cache.py): at most this many bytes on this host (0: off).
    clip_cache_bytes: int = _env("CLIPLINE_CLIP_CACHE_BYTES", 0, ge=0)
    clip_cache_dir: Path | None = _env("CLIPLINE_CLIP_CACHE_DIR")  # None: {work_dir}/.clip-cache
    log_level: str = _env("CLIPLINE_LOG_LEVEL", "INFO")
    # Where clips and results live (pipeline/storage): unset is the file backend on the work/output dirs.
    storage_url: str | None = _env("CLIPLINE_STORAGE_URL")
    s3_endpoint_url: str | None = _env("CLIPLINE_S3_ENDPOINT_URL")
    # The endpoint presigned URLs name, when clients reach the store by another name (compose: minio:9000).
    s3_public_endpoint_url: str | None = _env("CLIPLINE_S3_PUBLIC_ENDPOINT_URL")
    s3_url_ttl_s: int = _env("CLIPLINE_S3_URL_TTL_S", 3600, ge=60, le=7 * 86400)
    s3_max_attempts: int = _env("CLIPLINE_S3_MAX_ATTEMPTS", 5, ge=1, le=20)
    s3_multipart_threshold_bytes: int = _env("CLIPLINE_S3_MULTIPART_THRESHOLD_BYTES", 8 * 2**20, ge=1024)
    s3_part_size_bytes: int = _env("CLIPLINE_S3_PART_SIZE_BYTES", 8 * 2**20, ge=5 * 2**20)
    # Parallel transfers of one process: parts of one upload, clips the assembler downloads.
    s3_transfer_concurrency: int = _env("CLIPLINE_S3_TRANSFER_CONCURRENCY", 8, ge=1, le=64)
    # Incomplete multipart uploads older than this are aborted by the sweeper (0: only those of ended jobs).
    s3_abort_uploads_after_s: float = _env("CLIPLINE_S3_ABORT_UPLOADS_AFTER_S", 6 * 3600.0, ge=0)
    # Where people reach `clipline api`: the base of output_url/report_url/poster_url with the file backend.
    api_public_url: str = _env("CLIPLINE_API_PUBLIC_URL", "http://127.0.0.1:8080")

    @field_validator("x264_preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in X264_PRESETS:  # else every clip, and every placeholder, fails at its first encode
            raise ValueError(f"{value!r} is not an x264 preset ({', '.join(X264_PRESETS)})")
        return value

    @field_validator("broker_url", "redis_url")
    @classmethod
    def _service_url(cls, value: str, info: ValidationInfo) -> str:
        """A broker or Redis URL of the right scheme (pika and redis-py fail late, with a traceback)."""
        try:
            _URLS[info.field_name].validate_python(value)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"]) from None
        return value  # kept as written: the clients read the string

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """A URL SQLAlchemy can parse, of a dialect whose driver is installed."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            make_url(value).get_dialect().import_dbapi()
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ValueError(f"not a usable database URL ({type(exc).__name__}: {exc})") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:  # else logging silently falls back to INFO
            raise ValueError(f"{value!r} is not a log level ({', '.join(LOG_LEVELS)})")
        return value.upper()

    @field_validator("webhook_secret")
    @classmethod
    def _usable_webhook_key(cls, value: str | None) -> str | None:
        if value is not None:
            secret_key(value)  # a whsec_ secret that is not base64, or an empty one: refused at start
        return value

    @property
    def clip_cache_root(self) -> Path:
        return self.clip_cache_dir if self.clip_cache_dir is not None else self.work_dir / ".clip-cache"

    @property
    def allowed_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    def ffmpeg_path(self) -> str:
        """The ffmpeg binary, resolved once; FFmpegMissing names what to do."""
        found = shutil.which(self.ffmpeg)
        if not found:
            raise FFmpegMissing(
                f"ffmpeg not found ({self.ffmpeg!r}): install it (apt-get install -y ffmpeg) "
                "or point CLIPLINE_FFMPEG at the binary"
            )
        return found

    def ffprobe_path(self) -> str:
        ffmpeg = self.ffmpeg_path()
        sibling = os.path.join(os.path.dirname(ffmpeg), "ffprobe")
        found = shutil.which(sibling) or shutil.which("ffprobe")
        if not found:
            raise FFmpegMissing("ffprobe not found next to ffmpeg: install the ffmpeg package")
        return found


def concurrency_ceiling(cpus: int | None = None) -> int:
    """The most clips one worker may cut at once: 4 per CPU (cutting is part network wait), at most 16."""
    return max(1, min(MAX_CLIP_CONCURRENCY, 4 * (cpus or os.cpu_count() or 1)))


def clamp_concurrency(requested: int, cpus: int | None = None) -> tuple[int, str | None]:
    """(effective value, warning or None) for a requested clip concurrency."""
    ceiling = concurrency_ceiling(cpus)
    if requested > ceiling:
        return ceiling, (
            f"clip concurrency {requested} is above the safe ceiling {ceiling} "
            f"(4 x {cpus or os.cpu_count()} CPUs, at most {MAX_CLIP_CONCURRENCY}); using {ceiling}"
        )
    return max(1, requested), None


class SettingsError(ClipLineError):
    """An environment variable is misspelt or holds a bad value."""


def _aliases(field: Any) -> list[str]:
    """A setting's variable names."""
    alias = field.validation_alias
    return [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []


def _known_env_names() -> set[str]:
    return {name for field in Settings.model_fields.values() for name in _aliases(field)}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    unknown = sorted(k for k in env if k.startswith("CLIPLINE_") and k not in _known_env_names())
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {sorted(_known_env_names())}")
    if environ is None:
        return _validated()
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return _validated()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _validated() -> Settings:
    """Settings from the environment; a value that does not validate is a SettingsError naming the
    variable, its value and the problem (exit 2 ``settings_invalid``), never a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        names = {f: next(iter(_aliases(i)), f) for f, i in Settings.model_fields.items()}
        problems = []
        for e in exc.errors():
            name = str(names.get(str(e["loc"][0]), e["loc"][0])) if e["loc"] else "(settings)"
            secret = any(w in name for w in ("SECRET", "KEY", "TOKEN", "PASSWORD", "URL"))
            shown = "" if secret else f"={e.get('input')!r}"  # secrets, and URLs with credentials, unsaid
            problems.append(f"{name}{shown}: {e['msg']}")
        raise SettingsError("invalid setting(s): " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
