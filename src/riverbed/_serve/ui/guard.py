"""Who may use the dashboard, and which requests may change things.

- With a token (``riverbed ui --token``, or ``$RIVERBED_TOKEN``), every request shows it:
  ``Authorization: Bearer TOKEN``, or the cookie set when a browser first opened a page
  with ``?token=TOKEN`` (HttpOnly, SameSite=Strict).
- Every POST (the buttons) must come from a page of the dashboard itself: its ``Origin``
  header (or, where a browser sends none, its ``Referer``) names this host. A page of
  another site cannot make a visitor's browser press a button (cross-site request
  forgery), token or not.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = ["COOKIE", "Verdict", "check"]

COOKIE = "riverbed_ui_token"
"""The cookie holding the token in a browser."""

Verdict = tuple[int, str] | None
"""Why a request is refused (its HTTP status and a message), or None to let it in."""


def _given_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE) or request.query_params.get("token")


def _same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this host (its host and port: the scheme is
    left out, since a proxy in front may speak HTTPS to the browser and HTTP here)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    host = request.headers.get("host", "")
    return bool(host) and urlsplit(source).netloc == host


def check(request: Request, token: str | None) -> Verdict:
    """Whether ``request`` may go on; see the module's docstring."""
    if token is not None:
        given = _given_token(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return 401, (
                "this dashboard needs its token: open it with ?token=TOKEN once, or send "
                "Authorization: Bearer TOKEN"
            )
    if request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
        return 403, (
            "refused: a change must come from a page of this dashboard (its Origin or "
            "Referer header names another site, or none)"
        )
    return None
