"""Secrets through the engine: pre/post steps, vars, fan-out, sub-workflows, what is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.conftest import by_name, node_with_secrets, wait_run
from treadle.engine.node import Node
from treadle.engine.service import EngineService

VALUE = "pa55-w0rd/for+tests"


@pytest.fixture
async def node(store_url: str) -> AsyncIterator[Node]:
    async with node_with_secrets(store_url, {"PW": VALUE}) as started:
        yield started


def _service(node: Node) -> EngineService:
    assert node.service is not None
    return node.service


async def test_steps_vars_and_fanout_get_the_value_and_store_only_masks(
    node: Node, tmp_path: Path
) -> None:
    service = _service(node)
    seen = tmp_path / "seen"
    doc = {
        "name": "uses-secrets",
        "vars": {"auth": "Bearer {{ secrets.PW }}"},
        "tasks": [
            {
                "name": "main",
                "kind": "shell",
                "command": ["sh", "-c", 'echo "main $0" >> ' + str(seen), "{{ vars.auth }}"],
                "pre": [
                    {
                        "kind": "shell",
                        "command": [
                            "sh",
                            "-c",
                            'echo "pre $0" >> ' + str(seen),
                            "{{ secrets.PW }}",
                        ],
                    }
                ],
                "post": [
                    {
                        "kind": "shell",
                        "command": [
                            "sh",
                            "-c",
                            'echo "post $0 $1" >> ' + str(seen),
                            "{{ main.status }}",
                            "{{ secrets.PW }}",
                        ],
                    }
                ],
            },
            {
                "name": "each",
                "kind": "shell",
                "each": [1, 2],
                "command": ["sh", "-c", 'echo "item $0 $1"', "{{ item }}", "{{ secrets.PW }}"],
            },
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "completed", done.error
    assert sorted(seen.read_text().splitlines()) == sorted(
        [f"pre {VALUE}", f"main Bearer {VALUE}", f"post completed {VALUE}"]
    )
    tasks = await service.get_tasks(run.id)
    children = [t for t in tasks if t.parent_id is not None]
    assert sorted(c.output["stdout"] for c in children) == ["item 1 ***\n", "item 2 ***\n"]
    for task in tasks:
        assert VALUE not in repr(task), task.name  # spec, rendered spec, output, error
    # The stored ciphertext is not the value.
    stored = await service.store.get_secrets(["PW"])
    assert VALUE not in stored["PW"].ciphertext


async def test_a_subworkflow_cannot_take_a_secret_as_input(node: Node) -> None:
    service = _service(node)
    doc = {
        "name": "parent",
        "tasks": [
            {
                "name": "child",
                "kind": "subworkflow",
                "definition": "child",  # refused before the child is looked up
                "inputs": {"pw": "{{ secrets.PW }}"},
            }
        ],
    }
    run = await service.start_run(doc)
    done = await wait_run(service, run.id)
    assert done.status == "failed"
    task = by_name(await service.get_tasks(run.id))["child"]
    assert "secrets cannot be passed to a sub-workflow" in (task.error or "")
