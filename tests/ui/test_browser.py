"""Browser tests: Playwright for Python driving Debian's Chromium against a real `treadle
standalone`. Run scripts/setup-browser.sh first; with CI set, a missing browser fails the run."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.services import unavailable

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = os.environ.get("TREADLE_UI_SCREENSHOTS")  # a folder, e.g. docs/images

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - reported by the fixture
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    problem = None
    if sync_playwright is None:
        problem = "playwright is not installed (run scripts/setup-browser.sh)"
    elif not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (run scripts/setup-browser.sh)"
    if problem:
        unavailable(problem)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, ui_server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=ui_server.url)
    # Nothing may come from elsewhere: any request off this server fails the test.
    outside: list[str] = []
    context.route(
        re.compile(r"^(?!" + re.escape(ui_server.url) + ").*"),
        lambda route: (outside.append(route.request.url), route.abort()),
    )
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())
    try:
        yield tab
    finally:
        context.close()
    assert outside == []


def _api(server: Server) -> httpx.Client:
    return server.client()


def _start(server: Server, definition: str, **inputs: Any) -> str:
    with _api(server) as client:
        response = client.post("/api/v1/runs", json={"definition": definition, "inputs": inputs})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def _task(server: Server, run_id: str, name: str) -> dict[str, Any]:
    with _api(server) as client:
        run = client.get(f"/api/v1/runs/{run_id}").json()
    return next(t for t in run["tasks"] if t["name"] == name)


def _wait_task(server: Server, run_id: str, name: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _task(server, run_id, name)["status"] != status:
        assert time.monotonic() < deadline, f"{name} never became {status}"
        time.sleep(0.05)


def _shot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def test_start_a_run_from_the_form_and_watch_it_complete(page: Page, ui_server: Server) -> None:
    page.goto("/ui/start")
    page.get_by_label("Definition").select_option("formy")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Start formy")).to_be_visible()
    page.get_by_label("who").fill("ada")
    page.get_by_label("mode").select_option(label="fast")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/ui/runs/[0-9a-f-]{36}"))
    run_id = page.url.rsplit("/", 1)[1].split("?")[0]
    summary = page.locator("#summary")
    expect(summary.locator(".badge").first).to_have_text("completed", timeout=30_000)
    expect(page.locator('#graph [data-task="after"]')).to_have_class(re.compile("st-completed"))
    expect(page.locator("#log")).to_contain_text("hello ada fast")
    expect(page.locator("#events")).to_contain_text("run.completed")
    assert ui_server.wait_run(run_id)["inputs"]["who"] == "ada"


def test_form_errors_are_shown_next_to_the_field(page: Page) -> None:
    page.goto("/ui/start/formy")
    page.get_by_label("extra").fill("[1, 2]")
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#in-who-error")).to_have_text("who is required")
    expect(page.locator("#in-extra-error")).to_contain_text("must be a JSON object")
    expect(page.get_by_label("extra")).to_have_value("[1, 2]")
    expect(page.get_by_label("extra")).to_have_attribute("aria-invalid", "true")


def test_logs_stream_while_the_task_runs(page: Page, ui_server: Server) -> None:
    run_id = _start(ui_server, "ticker", lines=15)
    _wait_task(ui_server, run_id, "tick", "running")
    page.goto(f"/ui/runs/{run_id}?task=tick")
    log = page.locator("#log")
    expect(log).to_contain_text("tick 4", timeout=15_000)
    # Seen in the browser while the task was still going.
    assert _task(ui_server, run_id, "tick")["status"] == "running"
    assert "tick 14" not in log.inner_text()
    expect(page.locator("[data-log-state]")).to_have_text("following live")
    expect(log).to_contain_text("tick 14", timeout=20_000)
    expect(page.locator("[data-log-state]")).to_have_text("finished (completed)")
    text = log.inner_text()
    assert [int(n) for n in re.findall(r"tick (\d+)", text)] == list(range(15))  # no repeats


def test_pause_and_unpause_a_task(page: Page, ui_server: Server) -> None:
    run_id = _start(ui_server, "stuck")
    _wait_task(ui_server, run_id, "waiting", "queued")
    page.goto(f"/ui/runs/{run_id}?task=waiting")
    detail = page.locator("#task-detail")
    expect(detail.locator(".badge").first).to_have_text("queued")
    page.get_by_role("button", name="Pause task waiting").click()
    expect(page.locator("#flash")).to_contain_text("Paused task waiting")
    expect(detail.locator(".badge").first).to_have_text("paused", timeout=10_000)
    assert _task(ui_server, run_id, "waiting")["status"] == "paused"
    node = page.locator('#graph [data-task="waiting"]')
    expect(node).to_have_class(re.compile("st-paused"))
    page.get_by_role("button", name="Unpause task waiting").click()
    expect(page.locator("#flash")).to_contain_text("Unpaused task waiting")
    expect(detail.locator(".badge").first).to_have_text("queued", timeout=10_000)
    _wait_task(ui_server, run_id, "waiting", "queued")


def test_retry_a_failed_task(page: Page, ui_server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    run_id = _start(ui_server, "flaky", marker=str(marker))
    assert ui_server.wait_run(run_id)["status"] == "failed"
    page.goto(f"/ui/runs/{run_id}?task=check")
    detail = page.locator("#task-detail")
    expect(detail.locator(".badge").first).to_have_text("failed")
    expect(detail).to_contain_text("exit")
    marker.write_text("now it exists")
    page.get_by_role("button", name="Retry task check").click()
    expect(page.locator("#flash")).to_contain_text("Retrying task check")
    expect(page.locator("#summary .badge").first).to_have_text("completed", timeout=30_000)
    expect(detail.locator("table.attempts tbody tr")).to_have_count(2)
    assert ui_server.wait_run(run_id)["status"] == "completed"


def test_a_stale_page_says_changed_meanwhile(page: Page, ui_server: Server) -> None:
    run_id = _start(ui_server, "stuck")
    _wait_task(ui_server, run_id, "waiting", "queued")
    page.route("**/stream*", lambda route: route.abort())  # the page stops updating itself
    page.goto(f"/ui/runs/{run_id}?task=waiting")
    waiting = _task(ui_server, run_id, "waiting")
    with _api(ui_server) as client:
        paused = client.post(
            f"/api/v1/tasks/{waiting['id']}/pause", headers={"If-Match": waiting["etag"]}
        )
        assert paused.status_code == 200, paused.text
    page.get_by_role("button", name="Pause task waiting").click()
    flash = page.locator("#flash")
    expect(flash).to_contain_text("changed meanwhile")
    expect(flash.get_by_role("link", name="Reload")).to_be_visible()
    flash.get_by_role("link", name="Reload").click()
    expect(page.locator("#task-detail .badge").first).to_have_text("paused")


def test_runs_table_updates_itself_and_filters(page: Page, ui_server: Server) -> None:
    page.goto("/")
    first = _start(ui_server, "formy", who="one")
    expect(page.locator(f'tr[data-run="{first}"]')).to_be_visible(timeout=10_000)
    expect(page.locator(f'tr[data-run="{first}"] .badge')).to_have_text("completed", timeout=20_000)
    stuck = _start(ui_server, "stuck")
    page.get_by_label("Status").select_option("completed")
    expect(page.locator(f'tr[data-run="{stuck}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-run="{first}"]')).to_be_visible()
    expect(page).to_have_url(re.compile(r"/ui/runs\?status=completed$"))
    page.get_by_label("Status").select_option("")
    page.get_by_label("Run id starts with").fill(stuck[:8])
    expect(page.locator("tr[data-run]")).to_have_count(1)
    expect(page.locator(f'tr[data-run="{stuck}"]')).to_be_visible()


def test_keyboard_reaches_navigation_graph_and_buttons(page: Page, ui_server: Server) -> None:
    run_id = _start(ui_server, "stuck")
    _wait_task(ui_server, run_id, "waiting", "queued")
    page.goto(f"/ui/runs/{run_id}?task=root")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.getAttribute('aria-label') || ''"))
        if reached[-1].startswith("waiting"):
            break
    assert any(label.startswith("Kill run") for label in reached)
    assert reached[-1] == "waiting: queued"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"task=waiting"))
    expect(page.locator("#task-detail .task-name")).to_have_text("waiting")
    # The focus ring is drawn (not removed by the stylesheet). A key press while the button
    # has the focus makes it :focus-visible whatever moved the focus there; a live update
    # that swaps the panel takes the focus away, and then the check is simply made again.
    button = page.get_by_role("button", name="Pause task waiting")
    outline = "focus lost"
    for _ in range(5):
        button.focus()
        page.keyboard.press("Shift")
        outline = button.evaluate(
            "el => document.activeElement === el ? getComputedStyle(el).outlineStyle : 'focus lost'"
        )
        if outline != "focus lost":
            break
    assert outline == "solid"


def test_pages_fit_a_phone(page: Page, ui_server: Server) -> None:
    run_id = _start(ui_server, "nightly-report")
    ui_server.wait_run(run_id)
    page.set_viewport_size({"width": 390, "height": 844})
    for url in ("/", f"/ui/runs/{run_id}", "/ui/start/formy", "/ui/workers", "/ui/definitions"):
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 391, f"{url} is {width}px wide on a 390px screen"


def test_screenshots_of_the_main_pages(page: Page, ui_server: Server) -> None:
    for _ in range(3):
        ui_server.wait_run(_start(ui_server, "formy", who="ada"))
    _start(ui_server, "stuck")
    flaky = _start(ui_server, "flaky", marker="/nonexistent")
    ui_server.wait_run(flaky)
    report = _start(ui_server, "nightly-report")
    page.goto("/")
    expect(page.locator("tr[data-run]")).to_have_count(6)
    _shot(page, "runs")
    page.goto(f"/ui/runs/{report}?task=price")
    expect(page.locator('#graph [data-task="price"]')).to_have_class(
        re.compile("st-(running|completed)"), timeout=20_000
    )
    page.wait_for_timeout(400)
    _shot(page, "run")
    expect(page.locator("#summary .badge").first).to_have_text("completed", timeout=20_000)
    page.goto("/ui/start/formy")
    _shot(page, "start-form")
    page.goto("/ui/workers")
    expect(page.locator('tr[data-queue="nowhere"]')).to_be_visible()
    _shot(page, "workers")
    page.goto("/ui/definitions/nightly-report")
    expect(page.locator("svg.dag .band")).to_have_count(3)
    _shot(page, "definition")
