"""UI pages rendered by the real app in process: content, filters, forms, control, errors."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx

from tests.ui.conftest import start, wait_run


def _run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([^"]+)"', html)


async def test_runs_table_shows_status_definition_and_progress(client: httpx.AsyncClient) -> None:
    run_id = await start(client, "formy", who="ada")
    await wait_run(client, run_id)
    page = await client.get("/")
    assert page.status_code == 200
    html = page.text
    assert _run_ids(html) == [run_id]
    row = html[html.index(f'data-run="{run_id}"') :]
    assert "st-completed" in row[:2000] and "formy" in row[:2000]
    assert '<span class="count">2/2</span>' in row[:3000]
    assert 'src="/static/htmx.min.js' in html and "http://" not in html.split("<body>")[0]


async def test_filters_narrow_the_table(client: httpx.AsyncClient) -> None:
    done = await start(client, "formy", who="ada")
    await wait_run(client, done)
    stuck = await start(client, "stuck")
    assert set(_run_ids((await client.get("/ui/runs/table")).text)) == {done, stuck}
    assert _run_ids((await client.get("/ui/runs/table?status=completed")).text) == [done]
    assert _run_ids((await client.get("/ui/runs/table?definition=stuck")).text) == [stuck]
    assert _run_ids((await client.get(f"/ui/runs/table?q={stuck[:6]}")).text) == [stuck]
    assert _run_ids((await client.get("/ui/runs/table?since=15m")).text) != []
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert _run_ids((await client.get(f"/ui/runs/table?from={later}")).text) == []
    assert len(_run_ids((await client.get(f"/ui/runs/table?to={later}")).text)) == 2
    bad = await client.get("/ui/runs/table?status=weird&from=yesterday")
    assert bad.status_code == 200
    assert "unknown status" in bad.text and "could not read the from time" in bad.text


async def test_filter_change_updates_the_address_bar(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/ui/runs/table?status=failed", headers={"HX-Request": "true", "HX-Trigger": "run-filters"}
    )
    assert response.headers["HX-Replace-Url"] == "/ui/runs?status=failed"
    polled = await client.get("/ui/runs/table?status=failed", headers={"HX-Request": "true"})
    assert "HX-Replace-Url" not in polled.headers


async def test_cursor_pagination_walks_every_run_once(client: httpx.AsyncClient) -> None:
    ids = {await start(client, "stuck") for _ in range(7)}
    seen: list[str] = []
    url = "/ui/runs/table?limit=3"
    pages = 0
    while url:
        html = (await client.get(url)).text
        seen += _run_ids(html)
        pages += 1
        found = re.search(r'href="(/ui/runs\?[^"]*cursor=[^"]+)"', html)
        url = (
            found.group(1).replace("&amp;", "&").replace("/ui/runs?", "/ui/runs/table?")
            if (found and "Older" in html[found.end() : found.end() + 40])
            else ""
        )
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == 7


async def test_run_page_shows_graph_tasks_attempts_outputs_logs_and_events(
    client: httpx.AsyncClient,
) -> None:
    run_id = await start(client, "formy", who="ada", mode="fast")
    await wait_run(client, run_id)
    html = (await client.get(f"/ui/runs/{run_id}?task=greet")).text
    assert (
        '<svg class="dag"' in html and 'data-task="greet"' in html and 'data-task="after"' in html
    )
    assert 'aria-label="greet: completed"' in html
    assert '<svg class="gantt"' in html and "greet attempt 1: completed" in html
    assert "Inputs after templating" in html and "&#34;ada&#34;" in html  # rendered argv
    assert "hello ada fast" in html  # stdout in the output and in the log
    assert 'class="log"' in html and "── attempt 1 ──" in html
    assert "run.created" in html and "run.completed" in html
    assert f'sse-connect="/ui/runs/{run_id}/stream?task=greet"' in html


async def test_run_page_of_unknown_run_is_an_html_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/runs/no-such-run")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no run" in response.text and "Traceback" not in response.text


async def test_definitions_page_shows_versions_source_and_graph(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/ui/definitions")).text
    assert "nightly-report" in listing and "ticker" in listing
    doc = {
        "name": "ticker",
        "inputs": {"lines": {"type": "integer", "default": 3}},
        "tasks": [{"name": "only", "kind": "noop"}],
    }
    assert (await client.post("/api/v1/definitions", json=doc)).json()["version"] == 2
    latest = (await client.get("/ui/definitions/ticker")).text
    assert "v2" in latest and 'data-task="only"' in latest and 'data-task="tick"' not in latest
    old = (await client.get("/ui/definitions/ticker?version=1")).text
    assert 'data-task="tick"' in old and "time.sleep(0.3)" in old  # the stored source


async def test_start_form_is_generated_from_the_inputs_schema(client: httpx.AsyncClient) -> None:
    html = (await client.get("/ui/start/formy")).text
    assert re.search(r'<input id="in-who" name="who"[^>]*type="text"[^>]*required', html, re.S)
    assert re.search(r'<input id="in-times" name="times" value="2"\s+type="number"', html)
    assert (
        '<select id="in-mode" name="mode"' in html
        and '<option value="&#34;slow&#34;" selected>' in html
    )
    assert 'type="checkbox" id="in-loud" name="loud"' in html
    assert '<textarea id="in-extra" name="extra"' in html
    assert 'aria-describedby="in-who-help"' in html and "Who to greet" in html


async def test_start_form_submit_lands_on_the_run_page(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ui/start/formy", data={"who": "grace", "times": "3", "mode": '"fast"', "loud": "true"}
    )
    assert response.status_code == 303
    target = response.headers["location"]
    assert target.startswith("/ui/runs/")
    run = await wait_run(client, target.rsplit("/", 1)[1])
    assert run["inputs"] == {
        "who": "grace",
        "times": 3,
        "mode": "fast",
        "loud": True,
        "extra": None,
    }


async def test_start_form_errors_come_back_on_the_form(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ui/start/formy", data={"who": "", "times": "many", "extra": "[1]"}
    )
    assert response.status_code == 422
    html = response.text
    assert "who is required" in html and "times must be a whole number" in html
    assert "extra must be a JSON object" in html and 'value="many"' in html
    # The API's own checks come back too (the form does not check enum membership).
    rejected = await client.post("/ui/start/formy", data={"who": "x", "mode": '"medium"'})
    assert rejected.status_code == 422 and "must be one of" in rejected.text
    assert (await client.get("/api/v1/runs")).json()["items"] == []


async def test_stale_etag_says_changed_meanwhile_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    run_id = await start(client, "stuck")
    run = await wait_run(client, run_id, until="running")
    stale = str(int(run["etag"]) - 1)
    answer = await client.post(
        "/ui/act",
        data={
            "kind": "run",
            "id": run_id,
            "op": "kill",
            "etag": stale,
            "back": f"/ui/runs/{run_id}",
        },
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 409
    assert "changed meanwhile" in answer.text and f'href="/ui/runs/{run_id}"' in answer.text
    assert (await client.get(f"/api/v1/runs/{run_id}")).json()["status"] != "cancelled"
    fresh = await client.post(
        "/ui/act",
        data={"kind": "run", "id": run_id, "op": "kill", "etag": run["etag"], "label": "r1"},
        headers={"HX-Request": "true"},
    )
    assert fresh.status_code == 200, fresh.text
    assert "Killed run r1" in fresh.text and fresh.headers["HX-Trigger"] == "treadle-changed"
    assert (await client.get(f"/api/v1/runs/{run_id}")).json()["status"] == "cancelled"


async def test_unknown_operation_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post("/ui/act", data={"kind": "run", "id": "x", "op": "explode"})
    assert answer.status_code == 422 and "Unknown operation" in answer.text


async def test_control_redirects_only_to_local_pages(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/ui/act", data={"kind": "run", "id": "nope", "op": "kill", "back": "https://evil.example/"}
    )
    assert 'href="https://evil.example/' not in answer.text


async def test_workers_page_shows_workers_and_queue_depths(client: httpx.AsyncClient) -> None:
    run_id = await start(client, "stuck")
    for _ in range(200):
        tasks = (await client.get(f"/api/v1/runs/{run_id}")).json()["tasks"]
        if tasks[1]["status"] == "queued":
            break
        await asyncio.sleep(0.05)
    html = (await client.get("/ui/workers")).text
    worker = (await client.get("/api/v1/workers")).json()["items"][0]
    assert f'data-worker="{worker["id"]}"' in html and "st-alive" in html
    row = html[html.index('data-queue="nowhere"') :][:600]
    assert re.search(r'data-label="Waiting" class="num">1<', row)
    assert "no worker" in row
    default = html[html.index('data-queue="default"') :][:400]
    assert re.search(r'data-label="Slots" class="num">4<', default)


async def test_static_assets_are_served_from_the_package(client: httpx.AsyncClient) -> None:
    for name in ("htmx.min.js", "sse.min.js", "treadle.js", "treadle.css", "NOTICE"):
        response = await client.get(f"/static/{name}")
        assert response.status_code == 200 and len(response.content) > 100
    assert (
        b"2.0.11" in (await client.get("/static/htmx.min.js")).content
        or "2.0.11" in (await client.get("/static/NOTICE")).text
    )
    assert (await client.get("/static/../config.py")).status_code == 404


async def test_api_routes_still_answer_json(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/runs")).headers["content-type"] == "application/json"
    assert (await client.get("/api/v1/nope")).json()["error"]["code"] == "not_found"
    assert (await client.get(f"/ui/definitions/{quote('no such')}")).status_code == 404


async def _act(
    client: httpx.AsyncClient, kind: str, target: str, op: str, etag: str
) -> httpx.Response:
    return await client.post(
        "/ui/act",
        data={"kind": kind, "id": target, "op": op, "etag": etag, "label": target[:8]},
        headers={"HX-Request": "true"},
    )


async def _task(client: httpx.AsyncClient, run_id: str, name: str) -> dict[str, object]:
    run = (await client.get(f"/api/v1/runs/{run_id}")).json()
    return next(t for t in run["tasks"] if t["name"] == name)


async def test_task_buttons_follow_its_state_and_pause_unpause_work(
    client: httpx.AsyncClient,
) -> None:
    run_id = await start(client, "stuck")
    for _ in range(200):
        waiting = await _task(client, run_id, "waiting")
        if waiting["status"] == "queued":
            break
        await asyncio.sleep(0.05)
    html = (await client.get(f"/ui/runs/{run_id}?task=waiting")).text
    detail = html[html.index('id="task-detail"') :]
    detail = detail[: detail.index('class="logs"')]
    assert 'value="pause"' in detail and 'value="unpause"' not in detail
    assert f'name="etag" value="{waiting["etag"]}"' in detail
    answer = await _act(client, "task", str(waiting["id"]), "pause", str(waiting["etag"]))
    assert answer.status_code == 200 and "Paused task" in answer.text
    paused = await _task(client, run_id, "waiting")
    assert paused["status"] == "paused"
    again = await _act(client, "task", str(waiting["id"]), "pause", str(waiting["etag"]))
    assert again.status_code == 409 and "changed meanwhile" in again.text
    html = (await client.get(f"/ui/runs/{run_id}?task=waiting")).text
    assert 'value="unpause"' in html and "st-paused" in html
    answer = await _act(client, "task", str(waiting["id"]), "unpause", str(paused["etag"]))
    assert answer.status_code == 200, answer.text
    for _ in range(100):
        if (await _task(client, run_id, "waiting"))["status"] == "queued":
            break
        await asyncio.sleep(0.05)
    assert (await _task(client, run_id, "waiting"))["status"] == "queued"


async def test_an_operation_the_state_forbids_is_explained(client: httpx.AsyncClient) -> None:
    run_id = await start(client, "formy", who="x")
    await wait_run(client, run_id)
    greet = await _task(client, run_id, "greet")
    answer = await _act(client, "task", str(greet["id"]), "unpause", str(greet["etag"]))
    assert answer.status_code == 409
    assert "Could not unpause task" in answer.text and "completed" in answer.text


async def test_layers_are_bands_with_their_own_controls(client: httpx.AsyncClient) -> None:
    run_id = await start(client, "nightly-report")
    await wait_run(client, run_id)
    html = (await client.get(f"/ui/runs/{run_id}")).text
    assert html.count('<g class="band">') == 3
    assert ">layer gather</text>" in html and ">layer ship</text>" in html
    run = (await client.get(f"/api/v1/runs/{run_id}")).json()
    layer = next(x for x in run["layers"] if x["name"] == "build")
    assert f'name="id" value="{layer["id"]}"' in html
    answer = await _act(client, "layer", layer["id"], "rerun", layer["etag"])
    assert answer.status_code == 200, answer.text
    assert "Rerunning layer" in answer.text
    assert (await wait_run(client, run_id))["status"] == "completed"
