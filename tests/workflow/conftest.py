"""Workflow tests run on SQLite and PostgreSQL through the store tests' fixtures."""

from tests.store.conftest import backend, store, store_url

__all__ = ["backend", "store", "store_url"]
