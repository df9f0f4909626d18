"""What the HTTP service's tests share: the serve extra, or a clear skip; a free port."""

from __future__ import annotations

import socket

import pytest

from tests.services import unavailable


@pytest.fixture(autouse=True)
def _serve_extra() -> None:
    """These tests need riverbed[serve] (FastAPI, uvicorn, prometheus_client, httpx)."""
    for module in ("fastapi", "uvicorn", "prometheus_client", "httpx"):
        try:
            __import__(module)
        except ImportError as error:
            unavailable(f"{module} is not installed (pip install 'riverbed[serve]'): {error}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
