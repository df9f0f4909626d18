"""What every request passes before an endpoint runs: the bearer token (when the service
has one; health probes are exempt) and the body size limit. A pure ASGI middleware: it
adds no task or copy per request, unlike Starlette's ``BaseHTTPMiddleware``."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["OPEN_PATHS", "Guard", "error_body"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
UI_PREFIX = "/ui"
"""Where the dashboard is mounted: it checks the same token itself, also from the
``?token=`` link and cookie a browser can show (a browser sends no bearer header)."""
"""Paths answered without the token: probes of orchestrators that hold no secret."""


def error_body(message: str) -> bytes:
    """The JSON of an error response: ``{"error": message}``."""
    return json.dumps({"error": message}).encode()


class Guard:
    """Refuses a request without the bearer token (401) or whose declared body is larger
    than ``max_body`` bytes (413); endpoints reading a body count it too (a chunked body
    declares no length)."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.expected is not None and not _checked_elsewhere(scope["path"]):
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                why = "a bearer token is required" if not given else "the bearer token is wrong"
                message = f"{why}: send the header 'Authorization: Bearer TOKEN'"
                await _refuse(send, 401, message, [(b"www-authenticate", b"Bearer")])
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            message = f"the body is larger than this service takes ({self.max_body} bytes)"
            await _refuse(send, 413, message, [])
            return
        await self.app(scope, receive, send)


def _checked_elsewhere(path: str) -> bool:
    """Whether ``path`` needs no token here: a health probe, or the dashboard's own."""
    return path in OPEN_PATHS or path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


async def _refuse(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = error_body(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})
