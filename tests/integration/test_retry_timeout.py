"""retry (every attempt kept, `on` filters) and timeouts (task and run) end to end."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import BOTH_STORES, by_name, wait_run
from tests.integration.helpers import PY, pid_alive, sleeper_script, wait_for_file, wait_gone
from treadle import handler
from treadle.engine.service import EngineService

pytestmark = BOTH_STORES


def _exit_script(counter: Path, codes: list[int]) -> list[str]:
    """Exit with codes[n] on the n-th call (then 0)."""
    code = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        f"codes = {codes!r}\n"
        "sys.exit(codes[n] if n < len(codes) else 0)\n"
    )
    return [PY, "-c", code]


async def test_retry_until_success_keeps_every_attempt(
    service: EngineService, tmp_path: Path
) -> None:
    doc = {
        "name": "retry",
        "tasks": [
            {
                "name": "flaky",
                "kind": "shell",
                "command": _exit_script(tmp_path / "n", [75, 75]),
                "retry": {"max_attempts": 4, "backoff": "fixed", "initial": "50ms"},
            }
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "completed"
    attempts = await service.get_attempts(run.id)
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.status for a in attempts] == ["failed", "failed", "completed"]
    assert all("code 75" in (a.error or "") for a in attempts[:2])
    assert attempts[0].output["exit_code"] == 75
    task = by_name(await service.get_tasks(run.id))["flaky"]
    assert task.attempt_count == 3


async def test_retry_exhausted_fails_with_last_error(
    service: EngineService, tmp_path: Path
) -> None:
    doc = {
        "name": "retry",
        "tasks": [
            {
                "name": "bad",
                "kind": "shell",
                "command": _exit_script(tmp_path / "n", [3, 3, 3, 3]),
                "retry": {"max_attempts": 3, "initial": 0.01, "backoff": "exponential"},
            }
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "failed"
    assert len(await service.get_attempts(run.id)) == 3
    assert (tmp_path / "n").read_text() == "3"


async def test_retry_on_exit_codes_only(service: EngineService, tmp_path: Path) -> None:
    policy = {"max_attempts": 5, "initial": 0.01, "on": {"exit_codes": [75]}}
    doc = {
        "name": "retry-on",
        "tasks": [
            {
                "name": "temp",
                "kind": "shell",
                "command": _exit_script(tmp_path / "a", [75, 0]),
                "retry": policy,
                "depends_on": [],
            },
            {
                "name": "perm",
                "kind": "shell",
                "command": _exit_script(tmp_path / "b", [1, 0]),
                "retry": policy,
                "depends_on": [],
            },
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["temp"].status == "completed" and tasks["temp"].attempt_count == 2
    # Exit code 1 is not in `on.exit_codes`: no second attempt.
    assert tasks["perm"].status == "failed" and tasks["perm"].attempt_count == 1
    assert done.status == "failed"


_calls: dict[str, int] = {}


@handler("semantics_flaky_lookup")
def _flaky_lookup(kind: str) -> dict[str, int]:
    _calls[kind] = _calls.get(kind, 0) + 1
    if _calls[kind] < 3:
        raise (LookupError if kind == "lookup" else ValueError)(f"try {_calls[kind]}")
    return {"calls": _calls[kind]}


async def test_retry_on_error_types(service: EngineService) -> None:
    _calls.clear()
    policy = {"max_attempts": 5, "initial": 0.01, "on": {"errors": ["LookupError"]}}
    doc = {
        "name": "retry-errors",
        "tasks": [
            {
                "name": "lookup",
                "kind": "python",
                "handler": "semantics_flaky_lookup",
                "args": {"kind": "lookup"},
                "retry": policy,
                "depends_on": [],
            },
            {
                "name": "value",
                "kind": "python",
                "handler": "semantics_flaky_lookup",
                "args": {"kind": "value"},
                "retry": policy,
                "depends_on": [],
            },
        ],
    }
    run = await service.start_run(doc)
    await wait_run(service, run.id)
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["lookup"].status == "completed" and tasks["lookup"].output == {"calls": 3}
    assert tasks["value"].status == "failed" and tasks["value"].attempt_count == 1


async def test_task_timeout_kills_process_group(service: EngineService, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    doc = {
        "name": "timeout",
        "tasks": [
            {"name": "slow", "kind": "shell", "command": sleeper_script(pidfile), "timeout": 1.5}
        ],
    }
    run = await service.start_run(doc)
    pids = [int(p) for p in (await wait_for_file(pidfile)).split()]
    assert all(pid_alive(p) for p in pids)
    done = await wait_run(service, run.id, timeout=20)
    assert done.status == "failed"
    task = by_name(await service.get_tasks(run.id))["slow"]
    assert "timed out after 1.5s" in (task.error or "")
    for pid in pids:  # the shell process and its child: the whole group is gone
        await wait_gone(pid)


_started: list[str] = []


@handler("semantics_hang")
async def _hang() -> dict[str, str]:
    import asyncio

    _started.append("in")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        _started.append("cancelled")
        raise
    return {}


async def test_task_timeout_cancels_async_handler(service: EngineService) -> None:
    _started.clear()
    doc = {
        "name": "t",
        "tasks": [{"name": "h", "kind": "python", "handler": "semantics_hang", "timeout": 0.5}],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "failed"
    assert _started == ["in", "cancelled"]


async def test_task_timeout_cancels_http_request(service: EngineService) -> None:
    import asyncio

    hits: list[str] = []

    async def slow_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append("open")
        await reader.readline()
        try:
            await asyncio.sleep(30)  # never answers within the task's timeout
        finally:
            writer.close()

    server = await asyncio.start_server(slow_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        doc = {
            "name": "h",
            "tasks": [
                {
                    "name": "call",
                    "kind": "http",
                    "url": f"http://127.0.0.1:{port}/",
                    "timeout": 0.5,
                    "read_timeout": 30,
                }
            ],
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        run = await service.start_run(doc)
        done = await wait_run(service, run.id)
        assert done.status == "failed" and loop.time() - started < 10
        task = by_name(await service.get_tasks(run.id))["call"]
        assert "timed out after 0.5s" in (task.error or "")
        assert hits == ["open"]
    finally:
        server.close()


async def test_run_timeout_fails_run_and_kills_running_task(
    service: EngineService, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    doc = {
        "name": "run-timeout",
        "timeout": 2,
        "tasks": [
            {"name": "slow", "kind": "shell", "command": sleeper_script(pidfile)},
            {"name": "never", "kind": "noop"},
        ],
    }
    run = await service.start_run(doc)
    pids = [int(p) for p in (await wait_for_file(pidfile)).split()]
    done = await wait_run(service, run.id, timeout=20)
    assert done.status == "failed"
    assert "run timed out after 2s" in (done.error or "")
    tasks = by_name(await service.get_tasks(run.id))
    assert tasks["slow"].status == "cancelled" and tasks["never"].status == "cancelled"
    for pid in pids:
        await wait_gone(pid)
    events = [e.kind for e in await service.list_events(run.id)]
    assert "run.timed_out" in events
