"""Real services that tests need, found or skipped in one place.

A test that needs PostgreSQL calls ``require_postgres()``: it returns the server's URL, or
skips the test if the server is unreachable, or fails it when ``RIVERBED_REQUIRE_SERVICES=1``
(CI sets it, so that a missing server cannot turn the suite green by skipping).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("RIVERBED_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def _postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None if it can (checked once per session)."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to connect means the same: no server to test on
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}".strip()
    return None


def unavailable(reason: str) -> None:
    """Skip the current test for ``reason``, or fail it if services are required."""
    if os.environ.get("RIVERBED_REQUIRE_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require_postgres() -> str:
    """The URL of the test PostgreSQL server; skips (or fails) the test if unreachable."""
    problem = _postgres_problem()
    if problem is not None:
        unavailable(problem)
    return POSTGRES_URL


def require_ray() -> Any:
    """The ``ray`` module; skips (or fails) the test if riverbed's ray extra is missing."""
    from riverbed._runtime.ray.cluster import ray_module

    try:
        ray = ray_module()  # as the Ray runner imports it (keeping Python's print)
    except ImportError as exc:
        unavailable(f"ray is not installed (pip install 'riverbed[ray]'): {exc}")
        raise  # unreachable: unavailable() skips or fails
    return ray


REDIS_URL = os.environ.get("RIVERBED_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("RIVERBED_TEST_NATS", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("RIVERBED_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
MQTT_URL = os.environ.get("RIVERBED_TEST_MQTT", "mqtt://127.0.0.1:1883")


@functools.cache
def _port_problem(name: str, url: str) -> str | None:
    """Why the server at ``url`` cannot be reached (a TCP connect), or None."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=3):
            pass
    except OSError as exc:
        return f"{name} not reachable at {parts.hostname}:{parts.port}: {exc}"
    return None


def require_server(name: str, url: str, module: str) -> str:
    """``url`` if the server is reachable and its client library ``module`` installed;
    else skips (or fails) the test."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        unavailable(f"{name}'s client library {module!r} is not installed (make test installs it)")
    problem = _port_problem(name, url)
    if problem is not None:
        unavailable(problem)
    return url


def require_redis() -> str:
    """The test Redis server's URL (see ``require_server``)."""
    return require_server("Redis", REDIS_URL, "redis")


def require_nats() -> str:
    """The test NATS server's URL (see ``require_server``)."""
    return require_server("NATS", NATS_URL, "nats")


def require_rabbitmq() -> str:
    """The test RabbitMQ server's URL (see ``require_server``)."""
    return require_server("RabbitMQ", RABBITMQ_URL, "aio_pika")


def require_mqtt() -> str:
    """The test MQTT broker's URL (see ``require_server``)."""
    return require_server("MQTT", MQTT_URL, "paho")
