"""Client commands against a running server: submit, status, logs, list, cancel, definitions."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table

from treadle.cli.common import console, emit, fail, parse_inputs

ServerOpt = typer.Option(None, "--server", help="API URL (TREADLE_SERVER)")
OutputOpt = typer.Option("table", "--output", "-o", help="table | json | yaml")


def server_url(server: str | None) -> str:
    return (server or os.environ.get("TREADLE_SERVER") or "http://127.0.0.1:8765").rstrip("/")


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer`` from ``--token`` / ``TREADLE_TOKEN``, when one is given."""
    token = os.environ.get("TREADLE_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def request(server: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API; print the server's error message and exit non-zero on failure."""
    url = server_url(server) + path
    headers = {**kwargs.pop("headers", {}), **auth_headers()}
    try:
        response = httpx.request(method, url, headers=headers, timeout=30.0, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {server_url(server)}: {exc}", 2)
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        fail(f"{response.status_code}: {message}")
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


def _runs_table(data: Any) -> None:
    table = Table()
    for column in ("id", "definition", "status", "created", "duration", "error"):
        table.add_column(column)
    for run in data["items"]:
        table.add_row(
            run["id"],
            f"{run['definition']} v{run['version']}",
            run["status"],
            (run["created_at"] or "")[:19],
            str(run.get("duration") or ""),
            (run.get("error") or "")[:60],
        )
    console.print(table)
    if data.get("next_cursor"):
        console.print(f"more: --cursor {data['next_cursor']}", highlight=False)


def _run_table(run: Any) -> None:
    console.print(
        f"run {run['id']}  {run['definition']} v{run['version']}  [bold]{run['status']}[/]",
        highlight=False,
    )
    if run.get("error"):
        console.print(f"[red]{run['error']}[/]", highlight=False)
    table = Table()
    for column in ("task", "kind", "status", "attempts", "seconds", "error"):
        table.add_column(column)
    for task in run["tasks"]:
        table.add_row(
            task["name"],
            str(task.get("kind")),
            task["status"],
            str(task["attempt_count"]),
            str(task.get("duration") or ""),
            (task.get("error") or "")[:70],
        )
    console.print(table)


def register(app: typer.Typer, definitions_app: typer.Typer) -> None:  # noqa: C901  # noqa: C901
    @app.command()
    def submit(
        definition: str = typer.Argument(..., help="A stored definition's name, or a file"),
        input: list[str] | None = typer.Option(None, "--input", "-i", help="KEY=VALUE"),
        version: int | None = typer.Option(None, "--version"),
        wait: bool = typer.Option(False, "--wait", help="Wait until the run finishes"),
        server: str | None = ServerOpt,
        output: str = OutputOpt,
    ) -> None:
        """Start a run on the server."""
        body: dict[str, Any] = {"inputs": parse_inputs(input)}
        path = Path(definition)
        if path.is_file():
            from treadle.model.parse import load_document

            body["definition"] = load_document(path.read_text())
        else:
            body["definition"] = definition
            if version is not None:
                body["version"] = version
        run = request(server, "POST", "/api/v1/runs", json=body)
        while wait and run["status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.3)
            run = request(server, "GET", f"/api/v1/runs/{run['id']}")
        if output == "table" and not wait:
            print(run["id"])
        else:
            emit(run, output, _run_table)
        if wait and run["status"] != "completed":
            raise typer.Exit(1)

    @app.command()
    def status(run_id: str, server: str | None = ServerOpt, output: str = OutputOpt) -> None:
        """Show a run with its tasks."""
        emit(request(server, "GET", f"/api/v1/runs/{run_id}"), output, _run_table)

    @app.command("list")
    def list_runs(
        status: str | None = typer.Option(None, "--status"),
        definition: str | None = typer.Option(None, "--definition"),
        limit: int = typer.Option(20, "--limit"),
        cursor: str | None = typer.Option(None, "--cursor"),
        server: str | None = ServerOpt,
        output: str = OutputOpt,
    ) -> None:
        """List runs, newest first."""
        params = {
            k: v
            for k, v in {
                "status": status,
                "definition": definition,
                "limit": limit,
                "cursor": cursor,
            }.items()
            if v
        }
        emit(request(server, "GET", "/api/v1/runs", params=params), output, _runs_table)

    @app.command()
    def logs(
        run_id: str,
        task: str,
        follow: bool = typer.Option(False, "--follow", "-f"),
        server: str | None = ServerOpt,
    ) -> None:
        """Print a task's log (and follow it while the task runs)."""
        url = f"{server_url(server)}/api/v1/runs/{run_id}/tasks/{task}/logs"
        try:
            with httpx.stream(
                "GET",
                url,
                params={"follow": str(follow).lower()},
                headers=auth_headers(),
                timeout=None,
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    try:
                        fail(f"{response.status_code}: {response.json()['error']['message']}")
                    except (ValueError, KeyError):
                        fail(f"{response.status_code}: {response.text[:300]}")
                for chunk in response.iter_text():
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
        except httpx.HTTPError as exc:
            fail(f"cannot reach {server_url(server)}: {exc}", 2)

    @app.command()
    def cancel(run_id: str, server: str | None = ServerOpt, output: str = OutputOpt) -> None:
        """Cancel a run (running tasks are stopped)."""
        emit(request(server, "POST", f"/api/v1/runs/{run_id}/cancel"), output, _run_table)

    @definitions_app.command("list")
    def definitions_list(server: str | None = ServerOpt, output: str = OutputOpt) -> None:
        """List stored definitions (latest versions)."""

        def table(data: Any) -> None:
            t = Table()
            for column in ("name", "version", "dialect", "description"):
                t.add_column(column)
            for d in data["items"]:
                t.add_row(d["name"], str(d["version"]), d["dialect"], d.get("description") or "")
            console.print(t)

        emit(request(server, "GET", "/api/v1/definitions"), output, table)

    @definitions_app.command("get")
    def definitions_get(
        name: str,
        version: int | None = typer.Option(None, "--version"),
        server: str | None = ServerOpt,
        output: str = OutputOpt,
    ) -> None:
        """Show one definition."""
        params = {"version": version} if version else {}
        data = request(server, "GET", f"/api/v1/definitions/{name}", params=params)
        emit(data, output, lambda d: print(d.get("source") or json.dumps(d["document"])))

    @definitions_app.command("import")
    def definitions_import(
        files: list[Path] = typer.Argument(..., help="Definition files"),
        dialect: str | None = typer.Option(
            None, "--dialect", help="native|gin|tork|mender|flower|igor"
        ),
        server: str | None = ServerOpt,
    ) -> None:
        """Store definition files on the server (dialect detected unless given)."""
        failed = 0
        for file in files:
            if not file.is_file():
                console.print(f"[red]{file}: no such file[/]", highlight=False)
                failed += 1
                continue
            ctype = "application/json" if file.suffix == ".json" else "application/yaml"
            params = {"dialect": dialect} if dialect else {}
            try:
                data = request(
                    server,
                    "POST",
                    "/api/v1/definitions",
                    params=params,
                    content=file.read_bytes(),
                    headers={"Content-Type": ctype},
                )
            except typer.Exit:
                failed += 1
                continue
            console.print(
                f"{file}: {data['name']} v{data['version']} ({data['dialect']})", highlight=False
            )
        if failed:
            raise typer.Exit(1)
