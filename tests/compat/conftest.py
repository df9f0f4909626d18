"""Dialect tests that take a store run on SQLite and PostgreSQL, as the store tests do."""

from tests.store.conftest import backend, store, store_url

__all__ = ["backend", "store", "store_url"]
