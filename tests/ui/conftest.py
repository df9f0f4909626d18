"""The dashboard's tests: an app over an empty store of each backend, and a client."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import riverbed as rb
from tests.store.conftest import backend, store_url
from tests.ui import ui_app

__all__ = ["backend", "store_url"]

try:
    import fastapi  # noqa: F401 - only whether the serve extra is installed
except ImportError:
    if os.environ.get("RIVERBED_REQUIRE_SERVICES") == "1":
        raise  # CI installs every extra: a missing one must not turn the suite green
    # Without the serve extra (pip install 'riverbed[serve]') there is no dashboard to test.
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def store(store_url: str) -> Iterator[rb.Store]:
    """An open, empty store of each backend."""
    with rb.open_store(store_url) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _broken_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the bugs of ``ui_app`` in place."""
    monkeypatch.setattr(ui_app, "BROKEN", True)
    monkeypatch.setattr(ui_app, "PICKY", True)
    ui_app.SEEN.clear()
