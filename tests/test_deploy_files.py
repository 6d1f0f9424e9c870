"""The compose stack, RabbitMQ config and Prometheus config are valid and agree with the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from pipeline.settings import Settings, load_settings
from pipeline.stages import Stage

ROOT = Path(__file__).resolve().parents[1]


def _known_env() -> set[str]:
    out: set[str] = set()
    for f in Settings.model_fields.values():
        out.update(str(c) for c in getattr(f.validation_alias, "choices", []))
    return out


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _clipline_services() -> dict[str, dict[str, Any]]:
    """Every service that runs the clipline image (the stage workers and the API)."""
    return {
        name: svc
        for name, svc in _compose()["services"].items()
        if isinstance(svc.get("command"), list) and svc["command"][:1] == ["clipline"]
    }


def _workers() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _clipline_services().items() if v["command"][1] == "worker"}


def _long_running() -> dict[str, dict[str, Any]]:
    """The stage workers and the API (the services that talk to the broker); not the one-shot migrate."""
    return {k: v for k, v in _clipline_services().items() if v["command"][1] in ("worker", "api")}


def _hermetic_env() -> dict[str, str]:
    """The caller's environment without the variables compose interpolates, so its defaults are tested."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLIPLINE_", "TWELVELABS_", "RENDER_", "POSTGRES_", "COMPOSE_"))
    } | {"COMPOSE_PROJECT_NAME": "clipline-test"}


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed"
)
def test_compose_file_is_valid() -> None:
    res = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        env=_hermetic_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    # Every interpolated variable has a default (nothing is truly required to start the stack).
    assert "is not set" not in res.stderr, res.stderr


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


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_alert_rules_are_valid() -> None:
    res = subprocess.run(
        ["promtool", "check", "rules", "deploy/alerts.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _rule(name: str) -> dict[str, Any]:
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())["groups"][0]["rules"]
    (rule,) = [r for r in rules if r.get("alert") == name]
    return rule


def _fires(name: str, labels: dict[str, str]) -> dict[str, Any]:
    rule = _rule(name)
    return {
        "exp_labels": {**rule.get("labels", {}), **labels},
        "exp_annotations": rule["annotations"],
    }


#: (alert, input series with one value per minute, minute to evaluate at, label sets expected to fire)
ALERT_CASES: list[tuple[str, list[tuple[str, str]], int, list[dict[str, str]]]] = [
    # A dead-letter queue that grows fires, for its queue; one that stays put does not
    (
        "DeadLettersGrowing",
        [
            ('rabbitmq_queue_messages{queue="render.clip.XQ",vhost="clipline"}', "0 0 0 1 2 2 2"),
            ('rabbitmq_queue_messages{queue="render.plan.XQ",vhost="clipline"}', "3 3 3 3 3 3 3"),
            ('rabbitmq_queue_messages{queue="render.clip",vhost="clipline"}', "0 5 9 20 40 80 90"),
        ],
        5,
        [{"queue": "render.clip.XQ", "vhost": "clipline"}],
    ),
    ("DeadLettersGrowing", [('rabbitmq_queue_messages{queue="render.clip.XQ"}', "4 4 4 4 4 4 4")], 5, []),
    # A callback given up on in the last 30 minutes fires (seen by two assemble workers: once)
    (
        "WebhookDeliveriesGivenUp",
        [
            ('clipline_webhook_deliveries{state="failed",instance="a:9191"}', "2 2 2 3 3 3 3"),
            ('clipline_webhook_deliveries{state="failed",instance="b:9191"}', "2 2 2 3 3 3 3"),
            ('clipline_webhook_deliveries{state="pending",instance="a:9191"}', "0 1 5 9 9 9 9"),
        ],
        5,
        [{}],
    ),
    ("WebhookDeliveriesGivenUp", [('clipline_webhook_deliveries{state="failed"}', "3 3 3 3 3 3 3")], 5, []),
    # A stage queue without consumers fires; a stage queue that does not exist at all fires too
    (
        "NoStageConsumer",
        [
            ('rabbitmq_queue_consumers{queue="render.plan"}', "1 1 1 1 1 1 1"),
            ('rabbitmq_queue_consumers{queue="render.clip"}', "2 2 0 0 0 0 0"),
            ('rabbitmq_queue_consumers{queue="render.fallback"}', "1 1 1 1 1 1 1"),
            ('rabbitmq_queue_consumers{queue="render.clip.XQ"}', "0 0 0 0 0 0 0"),
        ],
        6,
        [{"queue": "render.clip"}, {"queue": "render.assemble"}],
    ),
    (
        "NoStageConsumer",
        [(f'rabbitmq_queue_consumers{{queue="render.{s.value}"}}', "1 1 1 1 1 1 1") for s in Stage],
        6,
        [],
    ),
    # A worker command that stops answering fires after 2 minutes
    (
        "WorkersDown",
        [
            ('up{job="clipline-workers",instance="worker-clip:9191"}', "1 1 0 0 0 0 0"),
            ('up{job="clipline-workers",instance="worker-plan:9191"}', "1 1 1 1 1 1 1"),
        ],
        6,
        [{"job": "clipline-workers", "instance": "worker-clip:9191"}],
    ),
]


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_alerts_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    tests = []
    for alert, series, minute, firing in ALERT_CASES:
        tests.append(
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {
                        "eval_time": f"{minute}m",
                        "alertname": alert,
                        "exp_alerts": [_fires(alert, f) for f in firing],
                    }
                ],
            }
        )
    shutil.copy(ROOT / "deploy" / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "alerts_test.yml").write_text(
        yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    res = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_workers_use_real_stages_and_real_settings() -> None:
    workers = _workers()
    assert set(workers) == {f"worker-{s}" for s in tuple(Stage)}
    for name, svc in workers.items():
        assert svc["command"] == ["clipline", "worker", "--stage", name.removeprefix("worker-")]
    for name, svc in _long_running().items():
        assert svc["restart"] == "unless-stopped", name
    for name, svc in _clipline_services().items():
        env = {
            k: v
            for k, v in svc["environment"].items()
            if k.startswith(("CLIPLINE_", "RENDER_", "TWELVELABS_"))
        }
        assert set(env) <= _known_env(), (name, set(env) - _known_env())
        load_settings({k: str(v) for k, v in env.items() if "${" not in str(v)})


def test_every_clipline_variable_named_in_compose_is_a_setting() -> None:
    """Workers refuse to start on an unknown CLIPLINE_* name; this includes interpolated host variables."""
    used = set(re.findall(r"\bCLIPLINE_[A-Z0-9_]+", (ROOT / "docker-compose.yml").read_text()))
    assert used and used <= _known_env(), used - _known_env()


def test_workers_are_scalable_share_storage_and_wait_for_healthy_infra() -> None:
    compose = _compose()
    services, volumes = compose["services"], compose.get("volumes") or {}
    for name, svc in _workers().items():
        # `docker-compose up --scale worker-X=N` needs no fixed name and no fixed host port.
        assert "container_name" not in svc and "ports" not in svc, name
        for infra, dep in svc["depends_on"].items():
            if infra in ("migrate", "minio-init"):  # the schema is current, the bucket exists
                assert dep == {"condition": "service_completed_successfully"}, (name, infra)
                continue
            assert dep == {"condition": "service_healthy"}, (name, infra)
            assert "healthcheck" in services[infra], infra
        assert set(svc["depends_on"]) >= {"rabbitmq", "redis", "postgres", "migrate", "minio", "minio-init"}
        env = svc["environment"]
        # Clips and results are in MinIO: no work or output volume is shared, so workers can run anywhere.
        assert str(env["CLIPLINE_STORAGE_URL"]).startswith("s3://"), name
        assert env["CLIPLINE_S3_ENDPOINT_URL"] == "http://minio:9000", name
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(env), name
        targets = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"]}
        for var in ("CLIPLINE_WORK_DIR", "CLIPLINE_OUTPUT_DIR"):
            assert targets.get(env[var]) not in volumes, f"{name}: {var} is on a shared volume"
        assert env["CLIPLINE_MEDIA_DIR"] in targets, name


def test_minio_bucket_is_created_at_start_with_the_workers_credentials() -> None:
    services = _compose()["services"]
    init, minio, worker = services["minio-init"], services["minio"], _workers()["worker-clip"]["environment"]
    bucket = str(worker["CLIPLINE_STORAGE_URL"]).removeprefix("s3://").split("/")[0]
    assert bucket == "${MINIO_BUCKET:-clipline}" and init["environment"]["MINIO_BUCKET"] == bucket
    script = " ".join(init["command"])
    assert "mc mb --ignore-existing" in script and "$$MINIO_BUCKET" in script
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}} and init["restart"] == "no"
    assert worker["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
    assert worker["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]
    assert "healthcheck" in minio


def test_the_schema_is_migrated_before_any_worker_or_the_api_starts() -> None:
    services = _compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["clipline", "db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, svc in _long_running().items():
        # Workers refuse an older schema: they start once the upgrade has exited 0, on the same database.
        assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert svc["environment"]["CLIPLINE_DATABASE_URL"] == migrate["environment"]["CLIPLINE_DATABASE_URL"]


def _seconds(duration: str) -> float:
    """A compose duration (``200s``, ``11m20s``, ``1h``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    return sum(float(n) * scale[u] for n, u in parts)


def test_docker_waits_for_running_messages_to_finish_on_stop() -> None:
    from clipline.worker import shutdown_timeout_s

    for name, svc in _workers().items():
        env = {
            k: str(v)
            for k, v in svc["environment"].items()
            if k.startswith("CLIPLINE_") and "${" not in str(v)
        }
        stage = Stage(svc["command"][3])
        timeout = shutdown_timeout_s(load_settings(env), stage)
        # Docker's SIGKILL must come after the stage's own shutdown timeout (and the supervisor's backstop).
        assert _seconds(svc["stop_grace_period"]) >= timeout + 10, (name, timeout)


def test_image_prepares_writable_volume_mount_points() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "--no-install-recommends ffmpeg" in dockerfile
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    chowned = " ".join(line for line in dockerfile.splitlines() if "chown" in line)
    for name, svc in _workers().items():
        for mount in svc["volumes"]:
            source, target = mount.split(":")[:2]
            if not source.startswith((".", "/")):  # named volume: takes its owner from the image
                assert target in chowned, f"{name}: {target} is not created for the non-root user"


def test_prometheus_scrapes_every_worker_and_rabbitmq() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    static = {
        t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]
    }
    assert "rabbitmq:15692" in static
    dns = [sd for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])]
    ports = {int(svc["environment"]["CLIPLINE_METRICS_PORT"]) for svc in _workers().values()}
    scraped = {(n, sd["port"]) for sd in dns if sd.get("type") == "A" for n in sd["names"]}
    # DNS (type A) finds every replica of a scaled service, not only the first.
    assert {(n, p) for n in _workers() for p in ports} <= scraped


def test_rabbitmq_definitions_declare_no_queues_and_timeout_covers_retries() -> None:
    definitions = json.loads((ROOT / "rabbitmq" / "definitions.json").read_text())
    # Dramatiq declares its queues (and .DQ/.XQ) with its own arguments; predeclared ones fail with
    # PRECONDITION_FAILED. Only the vhost, users and permissions belong here.
    assert set(definitions) <= {"users", "vhosts", "permissions", "rabbit_version", "rabbitmq_version"}
    assert (
        not definitions.get("queues") and not definitions.get("exchanges") and not definitions.get("bindings")
    )
    conf = (ROOT / "rabbitmq" / "rabbitmq.conf").read_text()
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", conf, re.M).group(1))  # type: ignore[union-attr]
    assert re.search(r"^load_definitions\s*=\s*/etc/rabbitmq/definitions\.json", conf, re.M)
    s = load_settings({})
    longest_clip_ms = (
        s.clip_max_retries + 1
    ) * s.ffmpeg_timeout_s * 1000 + s.clip_max_retries * s.retry_max_backoff_ms
    assert longest_clip_ms >= (120 * 4 + 10 * 3) * 1000  # the defaults this file was sized for
    assert timeout_ms > max(longest_clip_ms, s.assemble_timeout_s * 1000)
    plugins = (ROOT / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_prometheus" in plugins and "rabbitmq_management" in plugins


def test_compose_broker_url_matches_rabbitmq_definitions() -> None:
    definitions = json.loads((ROOT / "rabbitmq" / "definitions.json").read_text())
    for name, svc in _long_running().items():
        url = urlsplit(svc["environment"]["CLIPLINE_BROKER_URL"])
        assert url.hostname == "rabbitmq" and url.port == 5672, name
        vhost = unquote(url.path[1:]) or "/"
        assert {"name": vhost} in [{"name": v["name"]} for v in definitions["vhosts"]], (name, vhost)
        users = {u["name"]: u.get("password") for u in definitions["users"]}
        assert users.get(url.username) == url.password, (name, url.username)
        assert any(
            p["user"] == url.username and p["vhost"] == vhost and p["configure"] == ".*"
            for p in definitions["permissions"]
        ), (name, "Dramatiq declares its queues, so it needs configure permission")


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
    from clipline.metrics_server import DELIVERIES

    names: set[str] = set(RABBITMQ_METRICS) | {DELIVERIES}
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
