"""Every Redis key clipline uses, built in one place. Job-scoped keys expire with JOB_KEY_TTL_S."""

from __future__ import annotations

PREFIX = "clipline"
JOB_KEY_TTL_S = 7 * 24 * 3600


def text(value: bytes | str) -> str:
    """A value read from Redis as text (redis-py answers bytes; a test's client may answer str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def video_hls(video_id: str) -> str:
    """Cross-job cache: video_id -> HLS URL from the video API."""
    return f"{PREFIX}:video:{video_id}:hls"


def job_source(job_id: str, video_id: str) -> str:
    """The job's resolved source for one video (parsed playlist or 'gone')."""
    return f"{PREFIX}:job:{job_id}:source:{video_id}"


def job_source_lock(job_id: str, video_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:source:{video_id}:lock"


def job_validators(job_id: str) -> str:
    """Hash: segment URL -> its clip cache validator (ETag or length), asked once per job."""
    return f"{PREFIX}:job:{job_id}:validators"


def segment_lock(job_id: str, video_id: str, name: str | int) -> str:
    return f"{PREFIX}:job:{job_id}:seg:{video_id}:{name}:lock"


def job_results(job_id: str) -> str:
    """Hash: clip index -> final outcome JSON. Its size is the completion count."""
    return f"{PREFIX}:job:{job_id}:results"


def job_attempts(job_id: str) -> str:
    """Hash: '{index}' -> attempts so far, '{index}:error' -> last error."""
    return f"{PREFIX}:job:{job_id}:attempts"


def job_planned(job_id: str) -> str:
    """Set when the job is planned. A clip that finds it gone knows Redis lost the job's state."""
    return f"{PREFIX}:job:{job_id}:planned"


def job_sent(job_id: str) -> str:
    """Set when the plan has sent every clip message. A planned job without it had its fan-out cut short
    (the broker lost mid-way): the next delivery of the plan sends the rest."""
    return f"{PREFIX}:job:{job_id}:sent"


def job_song(job_id: str) -> str:
    """Hash: the job's song's failed background attempts (``failures``), the last one's ``kind`` and
    ``error`` (``audio.final_failure``)."""
    return f"{PREFIX}:job:{job_id}:song"


def job_song_bytes(job_id: str) -> str:
    """The bytes downloading the job's song took (whichever stage did it), for the job's ``bytes_fetched``."""
    return f"{PREFIX}:job:{job_id}:song-bytes"


def job_song_deferrals(job_id: str) -> str:
    """How many times the job's assembly deferred itself while its song was being prepared elsewhere."""
    return f"{PREFIX}:job:{job_id}:song-deferrals"


def job_assemble_fired(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:assemble-fired"


def job_prefetched(job_id: str) -> str:
    """Bytes prefetched into the job's segment caches (any host) that no clip has claimed yet."""
    return f"{PREFIX}:job:{job_id}:prefetched"


def job_inflight(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:inflight"


def job_peak(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:peak"


def job_lock(job_id: str, stage: str) -> str:
    return f"{PREFIX}:job:{job_id}:{stage}:lock"


def job_repairs(job_id: str) -> str:
    """How many times the reconciler repaired the job's current attempt since it last moved (it gives up
    after a bound)."""
    return f"{PREFIX}:job:{job_id}:repairs"


def job_waiting_resent(job_id: str) -> str:
    """When (Unix seconds) the reconciler last re-sent the clips of a job waiting behind a backlog."""
    return f"{PREFIX}:job:{job_id}:waiting-resent"


def job_repaired_at(job_id: str) -> str:
    """Where the job stood (``STATUS:progress``) at its last repair: once it has moved on, the count of
    repairs starts again."""
    return f"{PREFIX}:job:{job_id}:repaired-at"


def job_pattern(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:*"


def job_ends_to_count() -> str:
    """List of ``[status, duration_s]``: job ends seen by processes that serve no metrics (``clipline
    cancel``, the worker command's sweeper), counted by the first worker process to take them."""
    return f"{PREFIX}:metrics:job-ends"


def cancelled() -> str:
    """Set of job ids cancelled recently: workers stop their running ffmpeg."""
    return f"{PREFIX}:cancelled"


def config_hash() -> str:
    """Hash of live settings (``clipline config set``)."""
    return f"{PREFIX}:config"


def clip_slots() -> str:
    """Hash: parallel slot number -> 'holder-token expiry-ms' for clips running cluster-wide."""
    return f"{PREFIX}:clip-slots"


def job_holders(job_id: str, stage: str) -> str:
    """Hash: holder token -> expiry ms of the processes running the stage for the job right now.

    Lets the reconciler tell a stage lock whose holder died (SIGKILL, OOM) from one still at work.
    """
    return f"{PREFIX}:job:{job_id}:{stage}:holders"


def job_holder_beat(job_id: str, stage: str, token: str) -> str:
    """String with a TTL (PX), set again by each beat of the holder ``token`` of the job's stage: while it
    exists the holder is alive. Redis's own clock expires it, so no two hosts' clocks are compared."""
    return f"{PREFIX}:job:{job_id}:{stage}:holder:{token}"


def job_holders_missing(job_id: str, stage: str) -> str:
    """When the reconciler first found nobody beating for the job's stage, and no dead holder's mark
    either (Redis lost its state, or the holder had not beaten yet): epoch ms."""
    return f"{PREFIX}:job:{job_id}:{stage}:holders-missing"


def job_twins(job_id: str) -> str:
    """Hash: twin group (video, source window) -> the record of the slot whose cut its twins reuse."""
    return f"{PREFIX}:job:{job_id}:twins"


def job_twin_lock(job_id: str, group: str) -> str:
    """Held while one slot of a twin group cuts, so its twins wait and reuse the clip."""
    return f"{PREFIX}:job:{job_id}:twin:{group}:lock"
