"""The store goes away while a cluster runs: /readyz names it, processes retry, no run is lost.

The processes reach PostgreSQL through a TCP relay that the test takes down (closing every live
connection and the listener) and brings back on the same port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.cluster import POSTGRES_URL, Cluster, Relay, wait_for, with_options
from tests.integration.test_end_to_end import DAG

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(240)]


def test_store_outage_is_survived_and_reported_by_readyz(
    make_cluster: Callable[..., Cluster],
) -> None:
    target = urlsplit(POSTGRES_URL)
    relay = Relay(target.hostname or "127.0.0.1", target.port or 5432)
    relay.up()
    try:
        cluster = make_cluster("redis", env={"TREADLE_LEASE_SECONDS": "5"})
        relayed = target._replace(netloc=f"{target.username}@127.0.0.1:{relay.port}").geturl()
        cluster.db_override = with_options(relayed, f"schema={cluster.namespace}&pool_size=4")
        cluster.start(workers=2, worker_args=["--queue", "default:4"])
        cluster.post_runs(DAG, 20)
        relay.down()
        ready = httpx.get(f"{cluster.api_url}/readyz", timeout=30)
        assert ready.status_code == 503, ready.text
        assert ready.json()["broker"] == "ok"
        assert "store" in ready.json()["store"] and "postgresql://" in ready.json()["store"]
        time.sleep(3)  # every role hits the outage and retries
        relay.up()
        wait_for(
            lambda: httpx.get(f"{cluster.api_url}/readyz", timeout=30).status_code == 200,
            60,
            "/readyz to say ready again",
        )
        assert cluster.wait_runs_finished(20, timeout=150) == {"completed": 20}
        assert cluster.double_completions() == []
        for proc in cluster.procs:
            assert proc.alive(), f"{proc.role} died during the outage:\n{proc.text()[-2000:]}"
        assert any("failed" in p.text() or "WARNING" in p.text() for p in cluster.procs[1:])
    finally:
        relay.close()
