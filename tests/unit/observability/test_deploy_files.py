"""The dashboard and deployment files parse and only name metrics treadle exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ruamel.yaml import YAML

from treadle.observability import metrics

ROOT = Path(__file__).resolve().parents[3]


def test_dashboard_queries_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exported = {m.name for m in metrics.REGISTRY.collect()}
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used.update(re.findall(r"treadle_[a-z_]+", target["expr"]))
    assert used, "the dashboard queries nothing"
    for name in used:
        base = re.sub(r"_(bucket|count|sum|total)$", "", name)
        assert base in exported or name in exported, name


def test_compose_and_k8s_parse_and_run_every_role() -> None:
    yaml = YAML(typ="safe", pure=True)
    compose = yaml.load((ROOT / "deploy" / "compose.yaml").read_text())
    assert {"postgres", "rabbitmq", "api", "coordinator", "worker", "migrate"} <= set(
        compose["services"]
    )
    docs = list(yaml.load_all((ROOT / "deploy" / "k8s" / "treadle.yaml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "treadle-worker") in kinds and ("Job", "treadle-migrate") in kinds
