"""The dashboard's tests: an app over an empty store of each backend, and a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import riverbed as rb
from tests.store.conftest import backend, store_url
from tests.ui import ui_app

__all__ = ["backend", "store_url"]

pytest.importorskip("fastapi", reason="the dashboard needs the serve extra (fastapi)")


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
