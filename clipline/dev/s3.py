"""A loopback S3 server for tests, benchmarks and ``clipline demo --s3``: moto's standalone server.

moto (``pip install 'moto[server]'``, a dev dependency) answers the S3 HTTP
API from memory. ``LoopbackS3`` runs it in a child process on 127.0.0.1 and
creates the bucket. ``part_delay_ms`` makes every multipart UploadPart wait
before moto sees it, so a test can kill a worker while its upload is open.
``auth=True`` turns on moto's credential checks (a user with a key is made
first), so wrong credentials are refused as S3 would refuse them.

    python -m clipline.dev.s3 --port 9000 [--part-delay-ms 300]   # a server on its own
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.subprocesses import tied_to_caller

#: Credentials of the loopback server (moto accepts any unless auth is on; then only these).
ACCESS_KEY, SECRET_KEY, REGION = "AKIACLIPLINELOOPBACK", "clipline-loopback-secret", "us-east-1"
#: Requests before moto starts checking credentials (its INITIAL_NO_AUTH_ACTION_COUNT): creating the
#: user, its policy and its key take these three.
_SETUP_REQUESTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _delayed(app: Any, delay_s: float) -> Any:
    """WSGI middleware: an UploadPart (PUT with partNumber and uploadId) waits ``delay_s`` first."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        query = environ.get("QUERY_STRING", "")
        if environ.get("REQUEST_METHOD") == "PUT" and "partNumber=" in query and "uploadId=" in query:
            time.sleep(delay_s)
        return app(environ, start_response)

    return wrapped


def serve(port: int, part_delay_ms: int = 0) -> None:
    """Run moto's server app on 127.0.0.1:port until SIGTERM (this process only)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.server import MotoRequestHandler
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))
    app: Any = DomainDispatcherApplication(create_backend_app)
    if part_delay_ms > 0:
        app = _delayed(app, part_delay_ms / 1000)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


class LoopbackS3:
    """moto's S3 server in a child process, with one bucket; a context manager.

    ``env()`` is what a clipline process needs to use it (CLIPLINE_STORAGE_URL and friends).
    """

    def __init__(
        self,
        bucket: str = "clipline",
        *,
        prefix: str = "renders",
        port: int | None = None,
        part_delay_ms: int = 0,
        auth: bool = False,
        log: Path | None = None,
    ) -> None:
        self.bucket, self.prefix = bucket, prefix
        self.port = port or _free_port()
        self.part_delay_ms, self.auth = part_delay_ms, auth
        self.log = log
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def env(self, access_key: str | None = None, secret_key: str | None = None) -> dict[str, str]:
        """The variables of a clipline process using this server (its own credentials unless given)."""
        return {
            "CLIPLINE_STORAGE_URL": self.storage_url,
            "CLIPLINE_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": access_key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
        )

    def start(self) -> LoopbackS3:
        env = dict(os.environ)
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_SETUP_REQUESTS)
        argv = [sys.executable, "-m", "clipline.dev.s3", "--port", str(self.port)]
        argv += ["--part-delay-ms", str(self.part_delay_ms)]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - closed on stop
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=tied_to_caller(),  # dies with whoever started it
        )
        self._wait_ready()
        if self.auth:
            self._make_user()
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the loopback S3 server exited with {self.proc.returncode} (moto installed?)"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"the loopback S3 server did not listen on {self.port} in {timeout_s:g}s")

    def _make_user(self) -> None:
        """With moto's auth on: a user holding ACCESS_KEY/SECRET_KEY and full S3 rights."""
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="clipline")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="clipline", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="clipline")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API), then make the bucket again."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()
        self.client().create_bucket(Bucket=self.bucket)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> LoopbackS3:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clipline.dev.s3", description=__doc__)
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--part-delay-ms", type=int, default=0)
    args = p.parse_args(argv)
    serve(args.port, args.part_delay_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
