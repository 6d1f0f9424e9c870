"""``clipline worker``: one dramatiq command per stage, each on its own queue with its own cap.

One dramatiq process applies one prefetch to every queue it consumes, so
stages with different caps need separate commands. ``--stage all`` starts
all four and supervises them: a child that dies is restarted; SIGTERM stops
them all, each letting its running messages finish for up to its shutdown
timeout, then kills what is left. Every process under the supervisor dies with
it, even when it is SIGKILLed: the stage commands are tied to it
(``subprocesses.spawn``), their worker processes to them (``actors.middleware.
ParentWatch``), and every ffmpeg to the worker thread that started it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

import structlog

from actors import command, names
from pipeline.settings import Settings, clamp_concurrency
from pipeline.stages import Stage
from pipeline.subprocesses import spawn

log = structlog.get_logger("clipline.worker")

#: Threads (= prefetch) of the stages whose cap is not the clip concurrency.
OTHER_THREADS = {Stage.PLAN: 2, Stage.FALLBACK: 2, Stage.ASSEMBLE: 1}
NEEDS_FFMPEG = {Stage.CLIP, Stage.FALLBACK, Stage.ASSEMBLE}
RESTART_DELAY_S = 1.0
#: Added to a stage's longest ffmpeg run for its downloads, uploads and bookkeeping.
SHUTDOWN_MARGIN_S = 60.0
#: How long after its shutdown timeout a stage command that has not exited is killed.
STOP_MARGIN_S = 5.0


def shutdown_timeout_s(settings: Settings, stage: Stage) -> float:
    """How long a stopping stage command lets its running messages finish: above its longest run (one
    clip's ffmpeg timeout, the assembly's), so a deploy never kills a clip that would have finished."""
    longest = {Stage.ASSEMBLE: settings.assemble_timeout_s, Stage.PLAN: settings.http_timeout_s * 3}
    return longest.get(stage, settings.ffmpeg_timeout_s) + SHUTDOWN_MARGIN_S


@dataclass(frozen=True)
class StageCommand:
    stage: Stage
    threads: int
    processes: int
    extra_env: tuple[tuple[str, str], ...] = ()
    shutdown_timeout_s: float = SHUTDOWN_MARGIN_S

    def argv(self) -> list[str]:
        return command.stage_argv(
            self.stage,
            processes=self.processes,
            threads=self.threads,
            shutdown_timeout_s=self.shutdown_timeout_s,
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(command.stage_env(self.stage, self.threads))
        env.update(self.extra_env)
        return env


def plan_commands(
    settings: Settings,
    stage: Stage | str,
    concurrency: int | None,
    processes: int,
    extra_env: dict[str, str] | None = None,
    shutdown_timeout: float | None = None,
) -> list[StageCommand]:
    """The stage commands of ``clipline worker``. ``shutdown_timeout`` (seconds) replaces every
    stage's own grace time on SIGTERM (``shutdown_timeout_s``: above the stage's longest run)."""
    stages = tuple(Stage) if stage == "all" else (Stage(stage),)
    requested = concurrency if concurrency is not None else settings.render_clip_concurrency
    clip_cap, warning = clamp_concurrency(requested)
    if warning:
        log.warning(
            "config.clamped",
            key="render_clip_concurrency",
            requested=requested,
            effective=clip_cap,
            message=warning,
        )
    # Every stage learns the clip cap: clip workers run that many threads, and the assembler reports it.
    env = tuple(sorted({**(extra_env or {}), "RENDER_CLIP_CONCURRENCY": str(clip_cap)}.items()))
    return [
        StageCommand(
            s,
            clip_cap if s == Stage.CLIP else OTHER_THREADS[s],
            processes,
            env,
            shutdown_timeout_s(settings, s) if shutdown_timeout is None else shutdown_timeout,
        )
        for s in stages
    ]


def run(commands: list[StageCommand]) -> int:
    """Start every command and keep them running until SIGTERM/SIGINT."""
    stopping = False
    children: dict[Stage, subprocess.Popen[bytes]] = {}

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for cmd in commands:
        children[cmd.stage] = spawn(cmd.argv(), env=cmd.env())
        log.info(
            "worker.started",
            stage=cmd.stage,
            queue=names.QUEUE[cmd.stage],
            threads=cmd.threads,
            processes=cmd.processes,
            pid=children[cmd.stage].pid,
        )
    by_stage = {c.stage: c for c in commands}
    while True:
        time.sleep(0.2)
        if stopping:
            # Each dramatiq command stops on its own within its shutdown timeout; this is the backstop.
            deadline = time.monotonic() + max(c.shutdown_timeout_s for c in commands) + STOP_MARGIN_S
            for stage, proc in children.items():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("worker.killed", stage=stage, pid=proc.pid, reason="shutdown timeout passed")
                    _kill_group(proc)  # the command and its worker processes; their ffmpeg die with them
                    proc.wait()
            return 0
        for stage, proc in list(children.items()):
            code = proc.poll()
            if code is not None and not stopping:
                log.error("worker.died", stage=stage, exit_code=code, restart_in_s=RESTART_DELAY_S)
                time.sleep(RESTART_DELAY_S)
                children[stage] = spawn(by_stage[stage].argv(), env=by_stage[stage].env())


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a stage command's process group: the command and the worker processes it forked."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
