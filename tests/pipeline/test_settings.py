"""Settings: contract names, misspellings refused, concurrency ceiling."""

from __future__ import annotations

import pytest

from pipeline.settings import SettingsError, clamp_concurrency, concurrency_ceiling, load_settings


def test_defaults_follow_design() -> None:
    s = load_settings({})
    assert s.broker_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.database_url == "sqlite:///./clipline.db"
    assert s.render_clip_concurrency == 4 and s.ffmpeg == "ffmpeg"
    assert s.twelvelabs_api_url == "https://api.twelvelabs.io/v1.3"


def test_contract_names_are_read() -> None:
    s = load_settings(
        {
            "RENDER_CLIP_CONCURRENCY": "6",
            "TWELVELABS_INDEX_ID": "idx",
            "CLIPLINE_WORK_DIR": "/w",
            "CLIPLINE_ALLOWED_HOSTS": "CDN.example, api.example",
        }
    )
    assert s.render_clip_concurrency == 6 and s.twelvelabs_index_id == "idx" and str(s.work_dir) == "/w"
    assert s.allowed_host_set == {"cdn.example", "api.example"}


def test_a_misspelt_variable_is_an_error() -> None:
    with pytest.raises(SettingsError, match="CLIPLINE_WORKDIR"):
        load_settings({"CLIPLINE_WORKDIR": "/w"})


def test_concurrency_is_clamped_to_a_named_ceiling() -> None:
    assert concurrency_ceiling(2) == 8 and concurrency_ceiling(64) == 16
    assert clamp_concurrency(4, cpus=2) == (4, None)
    value, warning = clamp_concurrency(50, cpus=2)
    assert value == 8 and warning is not None and "safe ceiling 8" in warning
