"""Plain records: the render request (validated at the edge), job states, clip outcomes.

``parse_request`` is the single validation gate used by the CLI, the HTTP API
and the plan actor. It reports every problem it finds, each naming its field,
e.g. ``lines[3].clip.hls_url``. The published JSON Schema of the request
(``docs/schemas/``) is generated from ``RenderRequest``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import FieldProblem, RequestInvalid
from .problems import CONTROL_CHARS, Loc, Problems, field_path, problems_of, timeline_problems, url_problem

#: The version of the request, report, status and callback contracts (``schema_version``).
SCHEMA_VERSION: Literal[1] = 1
#: The largest ``metadata`` object a request may carry, as compact UTF-8 JSON.
METADATA_MAX_BYTES = 4096
#: The latest time a request may name (CLIPLINE_MAX_TIME_MS's default).
MAX_TIME_MS = 4 * 3600 * 1000

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

Id = Annotated[str, Field(pattern=ID_PATTERN)]


def _json_integer(value: Any) -> Any:
    """A JSON integer (``30``, or ``30.0``: JSON Schema's integer too), never ``true`` or ``"30"``: the
    published schema refuses them, and ``true`` read as 1 fps would render."""
    if isinstance(value, bool) or isinstance(value, str):
        raise ValueError("must be a JSON integer (not a string or a boolean)")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer of the request: read as JSON Schema reads it.
JsonInt = Annotated[int, BeforeValidator(_json_integer)]
Ms = Annotated[int, Field(ge=0), BeforeValidator(_json_integer)]


class JobStatus(StrEnum):
    """A job's state (DESIGN.md): PENDING -> PLANNING -> EXTRACTING -> ASSEMBLING -> a final state."""

    PENDING = "PENDING"
    PLANNING = "PLANNING"
    EXTRACTING = "EXTRACTING"
    ASSEMBLING = "ASSEMBLING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_GAPS = "COMPLETED_WITH_GAPS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_GAPS, JobStatus.FAILED, JobStatus.CANCELLED}
)


class ClipOutcome(StrEnum):
    """How a slot got its clip (report.json's ``outcome``)."""

    OK = "ok"  # cut from the planned source
    LOCAL = "local"  # cut from the local copy of the video
    PLACEHOLDER = "placeholder"  # black, of the exact length
    FAILED = "failed"  # no clip at all: the job fails

    @property
    def public_name(self) -> str:
        """Its name in ``clip_stats`` and in the clip log event's ``clip_status`` (DESIGN.md)."""
        return _PUBLIC_NAMES[self]


_PUBLIC_NAMES = {
    ClipOutcome.OK: "succeeded",
    ClipOutcome.LOCAL: "fallback_local",
    ClipOutcome.PLACEHOLDER: "placeholder",
    ClipOutcome.FAILED: "failed",
}


def _check_url(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    problem = url_problem(value, (info.context or {}).get("allowed_hosts") or frozenset())
    if problem:
        raise ValueError(problem)
    return value


def new_job_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d")
    return f"job-{stamp}-{secrets.token_hex(6)}"


def new_trace_id() -> str:
    return secrets.token_hex(8)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Quality = Literal["final", "draft"]


class OutputProfile(_Strict):
    width: JsonInt = Field(1280, ge=16, le=3840, multiple_of=2)
    height: JsonInt = Field(720, ge=16, le=2160, multiple_of=2)
    fps: JsonInt = Field(30, ge=1, le=60)
    quality: Quality = Field(
        default="final",
        description='"draft" for alignment review: a quarter of the pixels (half width and height, even), '
        "the fastest encoder preset, the same timeline and frame counts; marked as draft in report.json "
        "and the status object (the file is still final.mp4)",
    )

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the video rendered: the request's, or half of each (even) for a draft."""
        if self.quality == "final":
            return self.width, self.height
        return _even_half(self.width), _even_half(self.height)

    @property
    def rendition_height(self) -> int:
        """The height a master playlist's rendition is chosen for: the height written (a draft's is
        half the request's, so a draft reads a smaller rendition where the source has one)."""
        return self.frame_size[1]


def _even_half(pixels: int) -> int:
    return max(2, pixels // 4 * 2)


def _no_control(value: str) -> str:
    """``value``, refused when it holds a control character (a NUL cannot even be stored in PostgreSQL)."""
    if bad := CONTROL_CHARS.search(value):
        raise ValueError(f"must not contain control characters (found {bad.group()!r})")
    return value


class Audio(_Strict):
    url: str | None = None
    path: str | None = None

    _url = field_validator("url")(_check_url)

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _no_control(value)
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts or "\\" in value or not p.parts:
            raise ValueError("must be a relative path under CLIPLINE_MEDIA_DIR without '..'")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Audio:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of audio.url or audio.path")
        return self


class ClipWindow(_Strict):
    """The source window of a line: a span of one video."""

    video_id: Id
    start_ms: Ms
    end_ms: Ms
    hls_url: str | None = Field(
        None, description="the video's HLS playlist (http/https); without it the video API resolves video_id"
    )

    _url = field_validator("hls_url")(_check_url)

    @model_validator(mode="after")
    def _ordered(self) -> ClipWindow:
        if self.end_ms <= self.start_ms:
            msg = f"clip end_ms ({self.end_ms}) must be greater than start_ms ({self.start_ms})"
            raise Problems([(("end_ms",), msg)])
        return self

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


class Line(_Strict):
    """A lyric line: its window on the song's timeline, and the clip shown for it."""

    text: str = Field("", max_length=1000)
    start_ms: Ms = Field(description="on the song's timeline; lines are in order and do not overlap")
    end_ms: Ms
    clip: ClipWindow

    @model_validator(mode="after")
    def _ordered(self) -> Line:
        if self.end_ms <= self.start_ms:
            msg = f"end_ms ({self.end_ms}) must be greater than start_ms ({self.start_ms})"
            raise Problems([(("end_ms",), msg)])
        return self


class RenderRequest(_Strict):
    """What upstream sends (DESIGN.md "The render request")."""

    schema_version: Literal[1] = Field(
        SCHEMA_VERSION, description="The request contract's version; 1 when absent."
    )
    job_id: Id = Field(
        default_factory=new_job_id,
        description="The idempotency key: the same job_id and body give the existing job. "
        "Generated when absent.",
    )
    mix_request_id: str | None = Field(None, max_length=128)
    trace_id: str = Field(default_factory=new_trace_id, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    output: OutputProfile = Field(default_factory=lambda: OutputProfile(width=1280, height=720, fps=30))
    audio: Audio | None = Field(None, description="the song (url, or path under CLIPLINE_MEDIA_DIR)")
    callback_url: str | None = Field(None, description="POSTed each final state (Standard Webhooks signed)")
    metadata: dict[str, Any] | None = Field(
        None,
        description=f"The caller's own JSON object (at most {METADATA_MAX_BYTES} bytes as compact JSON), "
        "echoed unchanged in the job's status and callbacks.",
    )
    lines: list[Line] = Field(min_length=1, description="at most CLIPLINE_MAX_LINES (500 by default)")

    _url = field_validator("callback_url")(_check_url)

    @field_validator("mix_request_id")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return None if value is None else _no_control(value)

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:  # NaN or infinity (JSON has neither) would be echoed as null: refused instead
                text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            except ValueError as exc:
                raise ValueError("holds NaN or an infinite number, which JSON cannot carry") from exc
            except RecursionError as exc:
                raise ValueError("is nested too deep") from exc
            size = len(text.encode())
            if size > METADATA_MAX_BYTES:
                raise ValueError(f"{size} bytes as JSON is more than the maximum of {METADATA_MAX_BYTES}")
        return value

    @field_validator("lines")
    @classmethod
    def _limits(cls, lines: list[Line], info: ValidationInfo) -> list[Line]:
        ctx = info.context or {}
        max_lines = int(ctx.get("max_lines", 500))
        if len(lines) > max_lines:
            raise ValueError(
                f"{len(lines)} lines is more than the maximum of {max_lines} (CLIPLINE_MAX_LINES)"
            )
        max_ms = int(ctx.get("max_time_ms", MAX_TIME_MS))
        found = timeline_problems([line.model_dump() for line in lines], max_ms)
        if found:
            raise Problems(found)
        return lines

    @field_validator("lines")
    @classmethod
    def _one_playlist_per_video(cls, lines: list[Line]) -> list[Line]:
        """Lines naming one video_id name one playlist: its source is resolved once per job, so a second
        playlist would never be read, its lines silently cut from the first. The query may differ (each
        line's URL signed on its own)."""
        first: dict[str, tuple[int, str]] = {}
        found: list[tuple[Loc, str]] = []
        for i, line in enumerate(lines):
            url = line.clip.hls_url
            if url is None:
                continue
            here = urlsplit(url)._replace(query="", fragment="").geturl()
            seen = first.setdefault(line.clip.video_id, (i, here))
            if seen[1] != here:
                msg = (
                    f"video {line.clip.video_id!r} is given another playlist than in lines[{seen[0]}] "
                    f"({here} against {seen[1]}, queries aside): one video_id, one playlist"
                )
                found.append(((i, "clip", "hls_url"), msg))
        if found:
            raise Problems(found)
        return lines

    @model_validator(mode="after")
    def _every_slot_has_a_frame(self) -> RenderRequest:
        from .timeline import build_slots

        found: list[tuple[tuple[str | int, ...], str]] = [
            (
                ("lines", slot.index),
                f"gets no frame at {self.output.fps} fps (slot {slot.start_ms}-{slot.end_ms} ms)",
            )
            for slot in build_slots(self)
            if slot.frames < 1
        ]
        if found:
            raise Problems(found)
        return self

    def fingerprint(self) -> str:
        """Stable hash of the request body: same job_id + other body = conflict.

        trace_id is left out: it describes the delivery, not the video, and is
        generated when absent, so a plain resubmission must still match; so is
        schema_version (the envelope), metadata when there is none and
        output.quality when it is "final", so the hashes of jobs recorded
        before those fields existed still match.
        """
        leave_out: dict[str, Any] = {"trace_id": True, "schema_version": True}
        if self.metadata is None:
            leave_out["metadata"] = True
        if self.output.quality == "final":  # as before the field existed
            leave_out["output"] = {"quality"}
        body = json.dumps(self.model_dump(mode="json", exclude=leave_out), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()

    def distinct_videos(self) -> dict[str, str | None]:
        """video_id -> hls_url given in the request (first one wins), in first-use order."""
        seen: dict[str, str | None] = {}
        for line in self.lines:
            if line.clip.video_id not in seen or (seen[line.clip.video_id] is None and line.clip.hls_url):
                seen[line.clip.video_id] = line.clip.hls_url
        return seen


def parse_request(
    data: Any,
    *,
    max_lines: int = 500,
    max_time_ms: int = MAX_TIME_MS,
    allowed_hosts: frozenset[str] = frozenset(),
) -> RenderRequest:
    """Validate a raw request (dict) into a RenderRequest, or raise RequestInvalid listing every problem
    found, each with its field path (``exc.problems``; ``exc.field`` is the first one's).

    A missing (or null) job_id or trace_id is generated here, so the result is complete.
    """
    if not isinstance(data, dict):
        raise RequestInvalid.of([FieldProblem("(body)", "the request must be a JSON object")])
    data = {k: v for k, v in data.items() if not (k in ("job_id", "trace_id") and v is None)}
    # Large inputs are refused before the per-line work.
    lines = data.get("lines")
    if isinstance(lines, list) and len(lines) > max_lines:
        msg = f"{len(lines)} lines is more than the maximum of {max_lines} (CLIPLINE_MAX_LINES)"
        raise RequestInvalid.of([FieldProblem("lines", msg)])
    ctx = {"max_lines": max_lines, "max_time_ms": max_time_ms, "allowed_hosts": allowed_hosts}
    try:
        return RenderRequest.model_validate(data, context=ctx)
    except ValidationError as exc:
        found = problems_of(exc)
        if isinstance(lines, list):  # the lines' order is checked even when a line has its own problem
            for loc, msg in timeline_problems(lines, max_time_ms):
                if (more := FieldProblem(field_path(("lines", *loc)), msg)) not in found:
                    found.append(more)
        raise RequestInvalid.of(found) from exc


#: How a slot's clip was made from another clip of the same source window (``pipeline.clip_reuse``).
Reuse = Literal["copy", "trim", "hold"]
#: What the cross-job clip cache answered for an HLS cut.
CacheResult = Literal["hit", "miss"]


@dataclass
class ClipRecord:
    """A clip's final outcome: beside the clip file and in Redis; read by assembly and the report."""

    index: int
    outcome: ClipOutcome
    path: str | None = None
    video_id: str = ""
    attempts: int = 0
    last_error: str | None = None
    reason: str | None = None
    bytes_fetched: int = 0
    segments_fetched: int = 0
    segments_shared: int = 0
    extract_ms: float | None = None
    queue_wait_ms: float | None = None
    frames: int = 0
    drift_ms: float = 0.0
    source_first_frame: int | None = None  # the source frames the slot shows (frame rule), first and last
    source_last_frame: int | None = None
    cpu_ms: float | None = None  # CPU of this clip's ffmpeg/ffprobe children (wait4 rusage)
    reused_from: int | None = None  # the twin slot whose clip this one reuses (pipeline/clip_reuse.py)
    reuse: Reuse | None = None  # how a reused clip was made: copy | trim | hold
    cache: CacheResult | None = None  # the cross-job clip cache: hit | miss (None: off, or not cacheable)
    #: Each output frame's source frame, as an HLS cut planned it: in the process only (not in
    #: ``to_json``), for a twin slot trimmed from this clip (``clip_reuse``) and the clip cache.
    shown: list[int] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["shown"]
        return data

    def __post_init__(self) -> None:
        self.outcome = ClipOutcome(self.outcome)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
