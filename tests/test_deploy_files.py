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


#: RabbitMQ prometheus-plugin metrics the dashboard and alerts use (per-object metrics: rabbitmq.conf).
RABBITMQ_METRICS = {
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_consumers",
}
NAME_RE = re.compile(r"\b((?:clipline|dramatiq|rabbitmq)_[a-z0-9_]+)\b")


def _known_metric_names() -> set[str]:
    """Sample names our code can expose: clipline's registry, Dramatiq's middleware, RabbitMQ's plugin."""
    from prometheus_client import REGISTRY

    import actors.metrics  # noqa: F401 - registers clipline's metrics
    from actors import middleware

    names: set[str] = set(RABBITMQ_METRICS)
    for family in REGISTRY.collect():
        if family.name.startswith("clipline_"):
            names |= {
                family.name,
                f"{family.name}_total",
                f"{family.name}_bucket",
                f"{family.name}_sum",
                f"{family.name}_count",
            }
    import dramatiq.middleware.prometheus as dp

    source = Path(dp.__file__).read_text() + Path(middleware.__file__).read_text()
    for name in re.findall(r'"(dramatiq_[a-z_]+)"', source):
        names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_dashboard_and_alerts_query_metrics_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "clipline.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    alerts = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in alerts["groups"] for r in g["rules"]]
    used = {n for e in exprs for n in NAME_RE.findall(e)}
    assert used - _known_metric_names() == set()
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in (
        "in flight",
        "outcomes",
        "extract p95",
        "queue wait p95",
        "queue depth",
        "job duration",
        "placeholder ratio",
    ):
        assert needed in titles
    assert all("runbook" in r["annotations"] for g in alerts["groups"] for r in g["rules"])
