"""The dashboard's screenshots in docs/images/: ``python -m tests.ui.screenshots``.

Fills a fresh SQLite store with runs of ``tests.ui.ui_app`` (done, failed, with dead
letters, queued, one running), serves the dashboard over it, and photographs its main
pages in headless Chromium (see tests/ui/browser.py)."""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import sync_playwright

import riverbed as rb
from riverbed._serve.ui import dashboard_app
from tests.ui import ui_app
from tests.ui.browser import launch
from tests.ui.server import serving

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def fill(store: rb.Store) -> tuple[str, str]:
    """Runs of every kind; the ids of a failed run and of one running for 30 s."""
    for _ in range(3):
        ui_app.counting.run(store=store, progress=False)
    failed = ui_app.fragile_flow.run(store=store, progress=False, raise_on_failure=False)
    ui_app.lettered.run(store=store, progress=False)
    for n in range(2):
        store.enqueue(
            rb.RunRecord(
                run_id=f"queued{n:010d}",
                flow="counting",
                flow_version=ui_app.counting.version,
                status=rb.RunStatus.SCHEDULED,
                target="tests.ui.ui_app:counting",
                created_at=datetime.now(UTC),
            )
        )
    running = "slowdemo0001"
    threading.Thread(
        target=lambda: ui_app.slow_demo.run(
            store=store, run_id=running, checkpoint_interval=0.2, batch_size=10, progress=False
        ),
        daemon=True,
    ).start()
    return failed.run_id, running


def main() -> None:
    """Take the screenshots."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as folder,
        rb.open_store(f"sqlite:///{folder}/s.db") as store,
    ):
        failed, running = fill(store)
        time.sleep(1.0)
        with serving(dashboard_app(store)) as base, sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{base}/runs/{running}")
            time.sleep(9)  # the page polls: counters move, the chart fills
            page.screenshot(path=IMAGES / "dashboard-run.png", full_page=True)
            for name, path in (
                ("dashboard-runs", "/"),
                ("dashboard-failed", f"/runs/{failed}"),
                ("dashboard-letters", "/letters"),
                ("dashboard-queue", "/queue"),
            ):
                page.goto(base + path)
                page.screenshot(path=IMAGES / f"{name}.png", full_page=True)
            browser.close()
    for image in sorted(IMAGES.glob("dashboard-*.png")):
        print(image)


if __name__ == "__main__":
    main()
