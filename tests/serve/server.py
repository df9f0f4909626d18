"""A real uvicorn server on 127.0.0.1 (a free port), in a thread with its own event loop,
serving a flow: what the HTTP tests drive with httpx."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import riverbed as rb
from tests.serve.conftest import free_port


@contextlib.contextmanager
def serving(flow: rb.Flow, **settings: Any) -> Iterator[str]:
    """Serve ``flow`` (``service_app``'s ``settings``) until the block ends; yields the
    base URL. The run has ended when the block is left."""
    import uvicorn

    from riverbed._serve.app import service_app

    app = service_app(flow, **settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextlib.contextmanager
def serving_command(target: str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``riverbed serve TARGET ARGS`` in a process of its own (a free port on 127.0.0.1),
    until the block ends (then SIGTERM: the service stops cleanly); yields the base URL."""
    import os
    import subprocess
    import sys

    import httpx

    port = free_port()
    command = [sys.executable, "-m", "riverbed", "serve", target, "--port", str(port), *args]
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"riverbed serve did not start: {process.communicate()[1]}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
