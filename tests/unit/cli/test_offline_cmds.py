"""CLI commands that need no server: definitions render/graph, config show/validate."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from treadle.cli.main import app
from treadle.cli.runs_cmds import event_lines
from treadle.sdk import Run

DEFINITION = """
name: report
inputs:
  day: {type: string, required: true}
  limit: {type: integer, default: 10}
vars:
  api: "http://127.0.0.1:9000/{{ inputs.day }}"
tasks:
  - name: fetch
    kind: http
    url: "{{ vars.api }}/rows?limit={{ inputs.limit }}"
  - name: count
    kind: shell
    command: ["echo", "{{ inputs.day }}"]
    depends_on: []
  - name: report
    kind: log
    message: "{{ tasks.count.output.stdout }} rows"
    depends_on: [fetch, count]
"""

runner = CliRunner()


@pytest.fixture
def definition_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.yaml"
    path.write_text(DEFINITION)
    return path


def test_render_expands_inputs_and_keeps_runtime_templates(definition_file: Path) -> None:
    result = runner.invoke(
        app, ["definitions", "render", str(definition_file), "-i", "day=mon", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert tasks["fetch"]["url"] == "http://127.0.0.1:9000/mon/rows?limit=10"
    assert tasks["count"]["command"] == ["echo", "mon"]
    assert tasks["report"]["message"] == "{{ tasks.count.output.stdout }} rows"
    assert doc["inputs"] == {"day": "mon", "limit": 10}


def test_render_reports_a_missing_required_input(definition_file: Path) -> None:
    result = runner.invoke(app, ["definitions", "render", str(definition_file)])
    assert result.exit_code == 1
    assert "day" in result.output


def test_graph_text_and_svg(definition_file: Path, tmp_path: Path) -> None:
    text = runner.invoke(app, ["definitions", "graph", str(definition_file)])
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0] == "report v1"
    assert lines[-1].strip() == "report [log]  <- fetch, count"
    assert lines[-1].startswith("    ")  # depth 1: deeper than the roots
    out = tmp_path / "g.svg"
    svg = runner.invoke(
        app, ["definitions", "graph", str(definition_file), "-f", "svg", "--out", str(out)]
    )
    assert svg.exit_code == 0
    root = ElementTree.fromstring(out.read_text())
    ns = "{http://www.w3.org/2000/svg}"
    names = [g.get("data-name") for g in root.iter(f"{ns}g")]
    assert sorted(names) == ["count", "fetch", "report"]
    assert len(list(root.iter(f"{ns}line"))) == 2
    dot = runner.invoke(app, ["definitions", "graph", str(definition_file), "-f", "dot"])
    assert '"fetch" -> "report";' in dot.stdout
    bad = runner.invoke(app, ["definitions", "graph", str(definition_file), "-f", "png"])
    assert bad.exit_code == 2 and "unknown format" in bad.output


def test_config_show_masks_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "treadle.yaml"
    cfg.write_text("db: postgresql://app:hunter2@db:5432/treadle\nport: 9000\n")
    monkeypatch.delenv("TREADLE_DB", raising=False)
    monkeypatch.setenv("TREADLE_BROKER", "amqp://guest:guest@mq:5672/")
    result = runner.invoke(app, ["config", "show", "--config", str(cfg), "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["db"] == "postgresql://app:***@db:5432/treadle"
    assert data["broker"] == "amqp://guest:***@mq:5672/"
    assert data["port"] == 9000
    assert "hunter2" not in result.stdout


def test_config_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("port: 9000\nqueues: {default: 2}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: lots\nbogus: 1\n")
    assert runner.invoke(app, ["config", "validate", str(good)]).exit_code == 0
    result = runner.invoke(app, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "port" in result.output


def test_event_lines_one_per_change() -> None:
    def run(status: str, **tasks: str) -> Run:
        return Run.from_json(
            {
                "id": "r1",
                "status": status,
                "tasks": [{"id": n, "name": n, "status": s} for n, s in tasks.items()],
            }
        )

    first = event_lines(None, run("running", a="running", b="pending"))
    assert first == ["task a: running", "task b: pending", "run r1: running"]
    assert event_lines(run("running", a="running"), run("running", a="running")) == []
    assert event_lines(
        run("running", a="running", b="pending"), run("completed", a="completed", b="completed")
    ) == ["task a: completed", "task b: completed", "run r1: completed"]


def test_listing_rejects_unknown_output_format() -> None:
    result = runner.invoke(app, ["runs", "ls", "-o", "xml", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "unknown output format" in result.output


def test_prune_deletes_finished_runs(tmp_path: Path) -> None:
    import asyncio

    from treadle.config import load_settings
    from treadle.engine.node import Node

    db = tmp_path / "p.db"

    async def make_runs() -> None:
        settings = load_settings(
            None, db=f"sqlite:///{db}", broker="memory://", definitions=[], imports=[]
        )
        node = Node(settings, ("coordinator", "worker"))
        service = await node.start()
        try:
            for _ in range(2):
                run = await service.start_run(
                    {"name": "n", "tasks": [{"name": "a", "kind": "noop"}]}, {}
                )
                while (await service.get_run(run.id)).status != "completed":
                    await asyncio.sleep(0.02)
        finally:
            await node.stop()

    asyncio.run(make_runs())
    kept = runner.invoke(app, ["prune", "--older-than", "1d", "--db", str(db)])
    assert kept.exit_code == 0 and kept.stdout.strip().splitlines()[-1] == "0"
    gone = runner.invoke(app, ["prune", "--older-than", "1ms", "--db", str(db)])
    assert gone.exit_code == 0 and gone.stdout.strip().splitlines()[-1] == "2"
    bad = runner.invoke(app, ["prune", "--older-than", "soon", "--db", str(db)])
    assert bad.exit_code == 2 and "bad --older-than" in bad.output
