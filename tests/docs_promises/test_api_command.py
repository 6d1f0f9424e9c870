"""``clipline api [--host H] [--port P]`` on a bad or taken port (README exit codes: 2 for "a bad option"
and for a port in use, ``port_in_use``; 3 only for infrastructure unavailable)."""

from __future__ import annotations

import socket
from pathlib import Path

from .helpers import clipline, scratch_env


def test_api_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    """``clipline api --port 70000`` is exit 2 naming ``--port``, no traceback. Before: the option was
    a bare ``type=int``; uvicorn died in asyncio's create_server with a traceback (``OverflowError:
    bind(): port must be 0-65535``), exit 1 (README: "a bug in clipline")."""
    done = clipline(scratch_env(tmp_path), "api", "--port", "70000", timeout=30)
    assert "Traceback" not in done.stderr + done.stdout, (done.stderr + done.stdout)[-600:]
    assert done.returncode == 2, done.returncode


def test_api_port_in_use_is_exit_2_port_in_use(tmp_path: Path) -> None:
    """``clipline api --port P`` with P taken is exit 2 ``port_in_use``, one line naming the port (as
    ``clipline worker`` for its metrics port). Before: uvicorn bound the port itself and called
    sys.exit(3), which the README's table reads as "infrastructure unavailable", with no ``error:``
    line on stderr."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        done = clipline(scratch_env(tmp_path), "api", "--port", str(port), timeout=30)
    finally:
        holder.close()
    assert done.returncode == 2, (done.returncode, done.stderr[-300:], done.stdout[-300:])
    assert str(port) in done.stderr
