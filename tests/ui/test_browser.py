"""The dashboard in a real headless Chromium: the runs list, a running run's counters
changing, a dead letter replayed and a run resumed with their buttons, and an event whose
repr is a script shown as text. On SQLite (the HTTP tests cover PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed._serve.ui import dashboard_app
from tests.ui import ui_app
from tests.ui.browser import launch, require_browser
from tests.ui.server import serving

S = rb.RunStatus
WAIT = 20_000
"""Milliseconds a step may take at most (a shared, busy machine)."""


def run(flow: rb.Flow, **options: Any) -> rb.RunResult:
    """``flow.run(**options)`` in a thread of its own: Playwright's sync API keeps an event
    loop running in this one, in which a blocking run refuses to start."""
    results: list[rb.RunResult] = []
    thread = threading.Thread(
        target=lambda: results.append(flow.run(progress=False, raise_on_failure=False, **options))
    )
    thread.start()
    thread.join(60)
    return results[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium, shared by this module's tests."""
    sync_playwright = require_browser()
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[rb.Store]:
    """An empty SQLite store."""
    with rb.open_store(f"sqlite:///{tmp_path}/store.db") as opened:
        yield opened


@pytest.fixture
def site(store: rb.Store) -> Iterator[tuple[str, Any]]:
    """The dashboard over ``store`` served by uvicorn: its base URL, and the app."""
    app = dashboard_app(store)
    with serving(app) as base:
        yield base, app
        app.state.dashboard.actions.join(30)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page whose script errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(WAIT)
    yield opened
    context.close()
    assert errors == []


def test_runs_list_filters_and_links(store: rb.Store, site: tuple[str, Any], page: Any) -> None:
    """The list shows every run; choosing a status and pressing Filter keeps those; a
    run's link opens its page with its flow drawn."""
    done = run(ui_app.counting, store=store)
    failed = run(ui_app.fragile_flow, store=store)
    base, _ = site
    page.goto(base + "/")
    assert page.locator("tbody tr").count() == 2
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button")
    page.wait_for_url("**status=failed**")
    assert page.locator("tbody tr").count() == 1
    page.click(f"text={failed.run_id}")
    page.wait_for_url(f"**/runs/{failed.run_id}")
    assert page.locator("svg.graph .node").count() == 3
    assert "seven is <b>broken</b>" in page.locator("section.error").inner_text()
    assert done.run_id not in page.content()


def test_running_run_counters_change(store: rb.Store, site: tuple[str, Any], page: Any) -> None:
    """A running run's page shows its counters growing without a reload, then its end."""
    run_id = "slowrun0001"
    running = threading.Thread(
        target=lambda: ui_app.slow.run(
            store=store, run_id=run_id, checkpoint_interval=0.1, batch_size=10, progress=False
        )
    )
    running.start()
    try:
        base, _ = site
        _wait_for_run(store, run_id)
        page.goto(f"{base}/runs/{run_id}")
        first = _number_shown(page, "numbers", above=-1)
        assert first < 400, "the run ended before its page could follow it"
        assert _number_shown(page, "numbers", above=first) > first
        page.locator("h1 .badge.st-succeeded").wait_for(timeout=30_000)
        assert page.locator('td [data-field="stage/numbers/events_out"]').inner_text() == "400"
    finally:
        running.join(60)


def _wait_for_run(store: rb.Store, run_id: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            store.get_run(run_id)
            return
        except rb.RunNotFoundError:
            assert time.monotonic() < deadline, f"run {run_id} was never stored"
            time.sleep(0.05)


def _number_shown(page: Any, stage: str, above: int) -> int:
    """The events out of ``stage`` in its row, once that shows a number above ``above``
    (the page updating itself: nothing here reloads it)."""
    selector = f'td [data-field="stage/{stage}/events_out"]'
    page.wait_for_function(
        "([selector, above]) => { const e = document.querySelector(selector);"
        " if (e === null) return false; const n = Number(e.textContent.replace(/,/g, ''));"
        " return e.textContent !== '-' && n > above; }",
        arg=[selector, above],
    )
    return int(page.locator(selector).inner_text().replace(",", ""))


def test_dead_letter_replayed_with_its_button(
    store: rb.Store, site: tuple[str, Any], page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay, confirmed, runs the letter's event again into its stage; the letter then
    shows as replayed by that run."""
    run(ui_app.lettered, store=store)
    monkeypatch.setattr(ui_app, "PICKY", False)
    base, _ = site
    page.goto(base + "/letters")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("article.letter button:has-text('Replay')")
    page.wait_for_url("**/runs/**")
    page.locator("h1 .badge.st-succeeded").wait_for()
    assert "replaying dead letter" in page.locator(".notice").inner_text()
    assert store.dead_letters(replayed=False) == []
    page.goto(base + "/letters?replayed=1")
    assert "replayed by" in page.locator("article.letter").inner_text()


def test_run_resumed_with_its_button(
    store: rb.Store, site: tuple[str, Any], page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resume asks first: dismissed, nothing happens; accepted (the bug fixed), the run
    goes on from its checkpoint and its page ends on SUCCEEDED."""
    failed = run(ui_app.fragile_flow, store=store)
    base, app = site
    page.goto(f"{base}/runs/{failed.run_id}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button:has-text('Resume')")
    app.state.dashboard.actions.join(1)
    assert store.get_run(failed.run_id).status is S.FAILED
    monkeypatch.setattr(ui_app, "BROKEN", False)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Resume')")
    page.wait_for_url("**done=**")
    page.locator("h1 .badge.st-succeeded").wait_for()
    assert store.get_run(failed.run_id).status is S.SUCCEEDED


def test_script_in_an_event_is_shown_as_text(
    store: rb.Store, site: tuple[str, Any], page: Any
) -> None:
    """An event whose repr is a <script> is shown as those characters, and never runs."""
    run(ui_app.lettered, store=store)
    base, _ = site
    page.goto(base + "/letters")
    assert page.locator("code.event").inner_text() == "<script>window.pwned = 2</script>"
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("main script").count() == 0
