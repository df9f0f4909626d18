"""Durability tests run on both store backends, with the store tests' fixtures."""

from tests.store.conftest import backend, store, store_url

__all__ = ["backend", "store", "store_url"]
