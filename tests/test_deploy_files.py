"""The compose stack, RabbitMQ config and Prometheus config are valid and agree with the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from actors import names
from pipeline.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def _known_env() -> set[str]:
    out: set[str] = set()
    for f in Settings.model_fields.values():
        out.update(str(c) for c in getattr(f.validation_alias, "choices", []))
    return out


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed"
)
def test_compose_file_is_valid() -> None:
    res = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_prometheus_config_is_valid() -> None:
    res = subprocess.run(
        ["promtool", "check", "config", "deploy/prometheus.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_workers_use_real_stages_and_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    workers = {k: v for k, v in compose["services"].items() if k.startswith("worker-")}
    assert {w["command"][3] for w in workers.values()} == set(names.STAGES)
    for svc in workers.values():
        assert svc["restart"] == "unless-stopped" and "container_name" not in svc
        env = {
            k: v
            for k, v in svc["environment"].items()
            if k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))
        }
        assert set(env) <= _known_env(), set(env) - _known_env()
        load_settings({k: str(v) for k, v in env.items() if "${" not in str(v)})


def test_rabbitmq_definitions_declare_no_queues_and_timeout_covers_retries() -> None:
    definitions = json.loads((ROOT / "rabbitmq" / "definitions.json").read_text())
    assert (
        not definitions.get("queues") and not definitions.get("exchanges") and not definitions.get("bindings")
    )
    conf = (ROOT / "rabbitmq" / "rabbitmq.conf").read_text()
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", conf, re.M).group(1))  # type: ignore[union-attr]
    s = load_settings({})
    longest_clip_ms = (
        s.clip_max_retries + 1
    ) * s.ffmpeg_timeout_s * 1000 + s.clip_max_retries * s.retry_max_backoff_ms
    assert timeout_ms > max(longest_clip_ms, s.assemble_timeout_s * 1000)
    assert "rabbitmq_prometheus" in (ROOT / "rabbitmq" / "enabled_plugins").read_text()
