"""The ``shell`` kind: run a command (argv list, or a script with ``shell: true``).

User values reach the process as argv items or environment variables, never spliced into a
shell string by treadle. Output: ``exit_code``, ``stdout``, ``stderr`` (both capped) and ``json``
(from the file named by ``$TREADLE_OUTPUTS`` when the task writes one, else the last stdout line
when it parses as JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treadle.runtime.base import OUTPUT_TEXT_LIMIT, AttemptContext, TaskFailed, cap_text

KILL_GRACE_SECONDS = 3.0


class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.last_line = ""

    def add(self, text: str) -> None:
        stripped = text.strip()
        if stripped:
            self.last_line = stripped
        if self.size < self.limit:
            self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        return cap_text("".join(self.parts), self.limit)


async def _pump(
    stream: asyncio.StreamReader, name: str, capture: _Capture, ctx: AttemptContext
) -> None:
    while True:
        line = await stream.readline()
        if not line:
            return
        text = line.decode("utf-8", errors="replace")
        capture.add(text)
        ctx.log(name, text)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _kill_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Stop the whole process group: TERM, then KILL after a grace period."""
    _kill_group(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
    except TimeoutError:
        _kill_group(proc, signal.SIGKILL)
        await proc.wait()


def _environment(spec: Mapping[str, Any], ctx: AttemptContext, outputs_file: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ctx.env)
    env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    env.update(
        {
            "TREADLE_RUN_ID": ctx.run_id,
            "TREADLE_TASK_ID": ctx.task_id,
            "TREADLE_TASK_NAME": ctx.task_name,
            "TREADLE_ATTEMPT_ID": ctx.attempt_id,
            "TREADLE_ATTEMPT": str(ctx.attempt_number),
            "TREADLE_OUTPUTS": outputs_file,
        }
    )
    return env


async def run_shell(spec: Mapping[str, Any], ctx: AttemptContext) -> Any:
    command = spec.get("command")
    limit = int(ctx.settings.get("output_limit", OUTPUT_TEXT_LIMIT))
    cwd = spec.get("cwd") or (str(ctx.workdir) if ctx.workdir else None)
    if cwd and not Path(cwd).is_dir():
        raise TaskFailed(f"working directory {cwd!r} does not exist", retryable=False)
    with tempfile.TemporaryDirectory(prefix="treadle-") as scratch:
        outputs_file = str(Path(scratch) / "outputs.json")
        env = _environment(spec, ctx, outputs_file)
        try:
            if isinstance(command, str):
                proc = await asyncio.create_subprocess_exec(
                    "/bin/sh",
                    "-c",
                    command,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            else:
                argv = [str(a) for a in (command or [])]
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
        except (FileNotFoundError, PermissionError) as exc:
            raise TaskFailed(
                f"cannot start {command!r}: {exc.strerror or exc}",
                exit_code=127,
                error_type=type(exc).__name__,
            ) from exc
        out, err = _Capture(limit), _Capture(limit)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = asyncio.gather(
            _pump(proc.stdout, "stdout", out, ctx), _pump(proc.stderr, "stderr", err, ctx)
        )
        try:
            await pumps
            code = await proc.wait()
        except asyncio.CancelledError:
            pumps.cancel()
            await asyncio.shield(_stop(proc))
            raise
        structured = None
        outputs_path = Path(outputs_file)
        if outputs_path.exists() and outputs_path.stat().st_size:
            structured = _parse_json(outputs_path.read_text(errors="replace"))
            if structured is None:
                ctx.log("stderr", "treadle: $TREADLE_OUTPUTS does not hold valid JSON\n")
        if structured is None:
            structured = _parse_json(out.last_line)
    output = {"exit_code": code, "stdout": out.text(), "stderr": err.text(), "json": structured}
    if code != 0:
        tail = err.last_line or out.last_line
        detail = f": {tail}" if tail else ""
        raise TaskFailed(
            f"command exited with code {code}{detail}",
            output=output,
            exit_code=code,
            error_type="ExitCode",
        )
    return output
