"""Pure helpers of the job lifecycle: ages, percentiles, the old webhook signature, pruning a work dir."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from pipeline import files
from pipeline.clip_stats import percentile
from pipeline.errors import RequestInvalid
from pipeline.retention import parse_age
from pipeline.webhook_signing import legacy_signature


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "1y", "yesterday", "1 h 2"])
def test_parse_age_rejects_what_it_cannot_read(text: str) -> None:
    with pytest.raises(RequestInvalid, match="--older-than"):
        parse_age(text)


def test_parse_age_names_the_option_it_was_given() -> None:
    with pytest.raises(RequestInvalid, match="^--window 'a day'") as err:
        parse_age("a day", option="--window")
    assert err.value.field == "window"


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert (
        percentile(values, 95) == 19.0 and percentile(values, 50) == 10.0 and percentile(values, 100) == 20.0
    )
    assert percentile(list(reversed(values)), 95) == 19.0


def test_the_deprecated_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"job_id": "j", "status": "COMPLETED"}'
    expected = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert legacy_signature("k", body) == expected
    assert legacy_signature("k", body + b" ") != expected
    assert legacy_signature("other", body) != expected


def test_remove_all_but_keeps_clips_and_the_song(tmp_path: Path) -> None:
    for rel in ("clips/0000.mp4", "clips/0000.json", "audio/track.m4a", "audio/source", "segments/v/1.ts"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "concat.txt").write_text("x")
    files.remove_all_but(tmp_path, ("clips", "audio/track.m4a"))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["audio", "audio/track.m4a", "clips", "clips/0000.json", "clips/0000.mp4"]
    assert files.tree_size(tmp_path) == 3
    files.remove_all_but(tmp_path / "missing", ("clips",))  # nothing there: nothing to do
