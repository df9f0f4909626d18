"""Headless Chromium for the dashboard's browser tests: Debian's ``chromium`` driven by
Playwright's Python package (Playwright's own browser download is not used). Without
either, the tests skip saying so, or fail when ``RIVERBED_REQUIRE_SERVICES=1``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.services import unavailable

CHROMIUM = Path(os.environ.get("RIVERBED_CHROMIUM", "/usr/bin/chromium"))
"""The browser: Debian's package (``apt-get install chromium``)."""
ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs namespaces it lacks
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    """A headless Chromium, launched by ``playwright`` (``sync_playwright()``)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def require_browser() -> Any:
    """``playwright.sync_api.sync_playwright``; skips (or fails) the test if Playwright's
    package or the system's Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"Playwright's Python package is not installed (pip install playwright): {exc}")
        raise  # unreachable: unavailable() skips or fails
    if not CHROMIUM.exists():
        unavailable(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (or set RIVERBED_CHROMIUM)"
        )
    return sync_playwright
