"""The one way clipline runs a subprocess.

Argument lists only (never a shell), stdin closed, a timeout always, the
command logged with ``shlex.join``, and the tail of stderr kept in the raised
error. On timeout the whole process group is killed so no ffmpeg is orphaned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from .errors import FFmpegFailed, FFmpegMissing, FFmpegTimeout

log = structlog.get_logger(__name__)

STDERR_TAIL_CHARS = 2000


#: prctl(PR_SET_PDEATHSIG, SIGKILL): the child dies with the thread that started it, so a worker
#: killed with SIGKILL (OOM, a crash) leaves no ffmpeg running on (Linux only; elsewhere a no-op).
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if os.name == "posix" else None


def die_with_parent(parent_pid: int) -> None:
    """Make the calling process die (SIGKILL) when the thread of ``parent_pid`` that started it ends.

    Called in a child right after fork (``preexec_fn``, a dramatiq worker process at boot). A parent
    that died before the call would never signal us: then the child ends itself at once.
    """
    if _libc is not None and hasattr(_libc, "prctl"):
        _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)


def tied_to_caller() -> Callable[[], None]:
    """A ``preexec_fn`` that ties a child to the calling thread (``die_with_parent``): for the programs
    that start a ``clipline worker`` themselves (the demo, the tests, the bench)."""
    return functools.partial(die_with_parent, os.getpid())


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: str
    cpu_ms: float | None = None  # user + system CPU of the child (and its waited-for children)


class _Popen(subprocess.Popen[bytes]):
    """Popen that reaps its child with ``wait4``, keeping that child's own resource usage.

    ``RUSAGE_CHILDREN`` deltas would mix in the children of other threads running at the same time.
    """

    rusage: Any = None

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        try:
            pid, status, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return self.pid, 0
        if pid == self.pid:
            self.rusage = usage
        return pid, status


# Processes started by run(), keyed by a caller-chosen tag (the job id), so a
# cancelled job's ffmpeg can be stopped from another thread.
_live: dict[str, set[subprocess.Popen[bytes]]] = {}
_live_lock = threading.Lock()


@contextmanager
def _tracked(tag: str | None, proc: subprocess.Popen[bytes]) -> Iterator[None]:
    if tag is None:
        yield
        return
    with _live_lock:
        _live.setdefault(tag, set()).add(proc)
    try:
        yield
    finally:
        with _live_lock:
            procs = _live.get(tag)
            if procs is not None:
                procs.discard(proc)
                if not procs:
                    del _live[tag]


def kill_tagged(tag: str) -> int:
    """Kill every live process started with ``tag``; returns how many."""
    with _live_lock:
        procs = list(_live.get(tag, ()))
    for proc in procs:
        _kill_group(proc)
    return len(procs)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run(argv: list[str], *, timeout_s: float, tag: str | None = None, check: bool = True) -> Completed:
    """Run ``argv`` with stdin closed and a hard timeout.

    Raises FFmpegMissing when the binary is absent, FFmpegTimeout when the
    timeout fires (the process group is killed first), FFmpegFailed on a
    non-zero exit when ``check`` is true.
    """
    log.debug("subprocess.start", cmd=shlex.join(argv), timeout_s=timeout_s)
    try:
        proc = _Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),  # C calls in the child, no lock
        )
    except FileNotFoundError as exc:
        raise FFmpegMissing(f"{argv[0]} not found: install ffmpeg or set CLIPLINE_FFMPEG", argv=argv) from exc
    except PermissionError as exc:
        raise FFmpegMissing(f"{argv[0]} is not executable", argv=argv) from exc
    with _tracked(tag, proc):
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            out, err = proc.communicate()
            tail = err.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
            raise FFmpegTimeout(
                f"{argv[0]} timed out after {timeout_s:g}s", argv=argv, stderr_tail=tail
            ) from exc
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
    stderr = err.decode("utf-8", "replace")
    write_error = _output_write_error(stderr)
    if check and proc.returncode == 0 and write_error:
        # ffmpeg exits 0 when writing the trailer of an MP4 (+faststart) fails on a full disk.
        raise FFmpegFailed(
            f"{os.path.basename(argv[0])} could not write its output: {write_error}",
            argv=argv,
            stderr_tail=stderr.strip()[-STDERR_TAIL_CHARS:],
            returncode=proc.returncode,
        )
    if check and proc.returncode != 0:
        tail = stderr.strip()[-STDERR_TAIL_CHARS:]
        if proc.returncode < 0:
            msg = f"{os.path.basename(argv[0])} was killed by signal {-proc.returncode}"
        else:
            msg = f"{os.path.basename(argv[0])} exited {proc.returncode}"
        raise FFmpegFailed(msg, argv=argv, stderr_tail=tail, returncode=proc.returncode)
    usage = proc.rusage
    cpu_ms = round((usage.ru_utime + usage.ru_stime) * 1000, 1) if usage is not None else None
    return Completed(argv=argv, returncode=proc.returncode, stdout=out, stderr=stderr, cpu_ms=cpu_ms)


#: stderr lines of a write that failed even though the exit status may be 0.
_WRITE_FAILURES = ("Error writing trailer", "Error closing file")
_DISK_ERRORS = ("No space left on device", "Disk quota exceeded", "File too large")


def _output_write_error(stderr: str) -> str | None:
    """The OS error of a failed output write named in ffmpeg's stderr, else None."""
    for line in stderr.splitlines():
        disk = next((e for e in _DISK_ERRORS if e in line), None)
        if disk is not None:
            return disk
        if line.startswith(_WRITE_FAILURES):
            return line.strip()
    return None


def spawn(argv: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a long-lived child (a worker process): argv only, stdin closed, its own process group.

    Its output goes to ours. The caller owns its lifetime (``terminate``/``wait``); should the caller
    die without stopping it (SIGKILL, OOM), the child is SIGKILLed too (``die_with_parent``).
    """
    log.info("subprocess.spawn", cmd=shlex.join(argv))
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
    except FileNotFoundError as exc:
        raise FFmpegMissing(f"{argv[0]} not found", argv=argv) from exc
