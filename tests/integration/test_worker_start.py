"""Starting workers as the README says: several `clipline worker` commands on one host side by side
(one metrics port each), a taken port named in one line, and the plain dramatiq command refused."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from actors import command

from .conftest import Stack
from .faultkit import init_db, wait_for
from .private import free_port
from .test_deadletter import consumers

pytestmark = pytest.mark.integration


def scrape(port: int) -> str:
    try:
        res = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.HTTPError:
        return ""
    return res.text if res.status_code == 200 else ""


def test_two_worker_commands_on_one_host_each_with_its_own_metrics_port(stack: Stack) -> None:
    url = stack.env["CLIPLINE_BROKER_URL"]
    init_db(stack)
    # Given the README's one-command-per-stage layout on one host: each command its own --metrics-port
    plan_port, fallback_port = free_port(), free_port()
    plan = stack.start_workers("--stage", "plan", "--metrics-port", str(plan_port), name="plan")
    fallback = stack.start_workers(
        "--stage", "fallback", "--metrics-port", str(fallback_port), name="fallback"
    )

    # Then both serve their stage and their metrics, side by side
    wait_for("a plan consumer", lambda: consumers(url, "render.plan") > 0, timeout=90, every=0.5)
    wait_for("a fallback consumer", lambda: consumers(url, "render.fallback") > 0, timeout=90, every=0.5)
    wait_for("both metrics endpoints", lambda: bool(scrape(plan_port) and scrape(fallback_port)), timeout=30)
    assert plan.poll() is None and fallback.poll() is None

    # When a third command takes a port already in use, it says so in one line, naming port and flag
    clash = stack.start_workers("--stage", "plan", "--metrics-port", str(plan_port), name="clash")
    assert clash.wait(90) == 2
    out = stack.logs[-1].read_text()
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in out, out
    assert f"metrics port {plan_port} is already in use" in errors[0] and "--metrics-port" in errors[0]
    # and the first command is untouched
    assert plan.poll() is None and scrape(plan_port)


def test_the_plain_dramatiq_command_is_refused_naming_clipline_worker(stack: Stack) -> None:
    url = stack.env["CLIPLINE_BROKER_URL"]
    init_db(stack)
    res = subprocess.run(
        [sys.executable, "-m", "dramatiq", command.APP_MODULE, "--queues", "render.plan", "--processes", "1"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert command.REFUSAL in res.stderr and "clipline worker --stage" in res.stderr
    assert consumers(url, "render.plan") == 0  # it never consumed


def test_an_assembling_worker_serves_callback_deliveries_by_state(stack: Stack) -> None:
    from pipeline.store import JobStore, WebhookDelivery, utcnow

    store = JobStore(stack.env["CLIPLINE_DATABASE_URL"])
    with store.session() as s:
        for i, state in enumerate(("failed", "failed", "pending", "delivered")):
            s.add(
                WebhookDelivery(
                    id=f"d{i}",
                    job_id=f"job-{i}",
                    attempt=1,
                    status="COMPLETED",
                    url="http://127.0.0.1:9/cb",
                    body="{}",
                    state=state,
                    tries=8,
                    next_at=utcnow(),
                )
            )
        s.commit()
    port = free_port()
    stack.start_workers("--stage", "assemble", "--metrics-port", str(port), name="assemble")
    wait_for("the metrics endpoint", lambda: bool(scrape(port)), timeout=60)
    text = scrape(port)
    assert 'clipline_webhook_deliveries{state="failed"} 2.0' in text, text
    assert 'clipline_webhook_deliveries{state="pending"} 1.0' in text
    assert 'clipline_webhook_deliveries{state="delivered"} 1.0' in text
