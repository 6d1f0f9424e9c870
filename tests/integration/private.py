"""A private RabbitMQ node and a private redis-server on their own ports, for tests that stop them.

The machine's shared services (5672, 6379) are never touched: each private
server has its own node name, ports, data and log directories under a temp
dir, and is killed in ``close()`` whatever happened. RabbitMQ keeps its
mnesia directory across ``restart()``, so durable queues and persistent
messages survive as they would in production; Redis is started with no
persistence, so a restart loses every key, as Redis does here.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import redis

from pipeline.subprocesses import tied_to_caller

RABBIT_BIN = Path(os.environ.get("CLIPLINE_TEST_RABBIT_BIN", "/usr/lib/rabbitmq/bin"))
START_TIMEOUT_S = 90.0


def free_port(low: int = 20000, high: int = 32000) -> int:
    """A free TCP port below the ephemeral range (so no outgoing connection can take it before we bind)."""
    for _ in range(200):
        port = low + secrets.randbelow(high - low)
        if all(_port_free(p) for p in (port, port + 1)):
            return port
    raise RuntimeError("no free port found")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Server:
    """A server process of our own: restarted as stop-then-start, closed by killing its process group."""

    proc: subprocess.Popen[bytes] | None
    base: Path

    def start(self) -> None:
        raise NotImplementedError

    def _spawn(self, argv: list[str], log_name: str, env: dict[str, str] | None = None) -> None:
        """Start the server in its own process group, its output appended to ``base/log_name``."""
        with open(self.base / log_name, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=tied_to_caller(),
            )

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _kill_group(self.proc)
            self.proc.wait(10)
        self.proc = None


class PrivateRabbit(_Server):
    """One RabbitMQ node (foreground ``rabbitmq-server`` in its own process group) on a free port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.node = f"clipline-t{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = self.port + 1
        self.vhost = "clipline"
        self.proc: subprocess.Popen[bytes] | None = None
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(
            "consumer_timeout = 3600000\nloopback_users = none\nlog.console = false\n"
        )
        (base / "rabbitmq-env.conf").write_text("")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(base),  # the Erlang cookie lives here, shared by the server and rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{self.vhost}"

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        res = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {res.stderr.strip() or res.stdout}")
        return res.stdout

    def start(self) -> None:
        self._spawn([str(RABBIT_BIN / "rabbitmq-server")], "server.out", env=self.env)
        self._await_amqp()

    def _await_amqp(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        params = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{self.port}/%2F")
        params.connection_attempts, params.socket_timeout = 1, 2
        logging.getLogger("pika").setLevel(logging.CRITICAL)  # refused connections are expected here
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.proc.returncode}: see {self.base}/log")
            try:
                pika.BlockingConnection(params).close()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"RabbitMQ node {self.node} did not start in {START_TIMEOUT_S}s"
                    ) from None
                time.sleep(0.5)
        if self.vhost not in self.ctl("list_vhosts", "name").split():
            self.ctl("add_vhost", self.vhost)
            self.ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def stop(self) -> None:
        """A clean broker stop: durable queues and persistent messages are kept on disk."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.ctl("stop", check=False, timeout=90)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
                self.proc.wait(10)
        self.proc = None


class PrivateRedis(_Server):
    """One redis-server without persistence: a restart loses every key."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.base)]
        self._spawn(argv, "redis.out")
        assert self.proc is not None
        deadline = time.monotonic() + 30
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.proc.returncode}: see {self.base}/redis.out")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start in 30s") from None
                time.sleep(0.1)
        client.close()

    def stop(self) -> None:
        """Killed, not shut down: nothing is saved, as after a crash."""
        self.close()


@contextmanager
def private_rabbit(base: Path) -> Iterator[PrivateRabbit]:
    node = PrivateRabbit(base)
    try:
        node.start()
        yield node
    finally:
        node.close()


@contextmanager
def private_redis(base: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(base)
    try:
        server.start()
        yield server
    finally:
        server.close()
