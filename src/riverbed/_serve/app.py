"""The service's ASGI application (``service_app``), on FastAPI: what each endpoint
answers is documented in docs/serve.md, and in the OpenAPI schema it serves.

``POST /events/{source}`` decodes the body as JSON (never unpickled), one value or an
array of values, and offers them to the source. The answer says what happened:

- 202: accepted. With a store, only once a checkpoint holding the events is committed
  (a crash after it loses nothing; before it, the client gets no 202 and sends again);
  without one, once they are queued for the flow (in memory only).
- 200: a replying source's answer (one value, or a list in the order of the array).
- 429 + Retry-After: the source holds its capacity of events: the flow is behind.
- 503 + Retry-After: no run reads the source (starting, stopping, or ended).
- 504: a replying source's answer did not come within its timeout.
- 400, 401, 404, 413: a body that is not JSON, no or a wrong token, no such source, a body
  over the limit; every error is ``{"error": "what was wrong"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

import riverbed as rb
from riverbed._serve.guard import Guard, error_body
from riverbed._serve.service import Service

__all__ = ["DEFAULT_MAX_BODY", "RETRY_AFTER", "mount_ui", "service_app"]

DEFAULT_MAX_BODY = 1_000_000
"""Bytes a request body may have unless told otherwise."""

RETRY_AFTER = "1"
"""Seconds a client told 429 or 503 should wait before it sends again."""

_EVENTS_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"description": "One JSON event, or an array of events."},
        }
    },
}
_EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted (with a store: durably, in a committed checkpoint)."},
    400: {"description": "The body is not JSON."},
    404: {"description": "The flow has no HTTP source of that name."},
    413: {"description": "The body is larger than the service takes."},
    429: {"description": "The source is full: the flow is behind. Retry after Retry-After."},
    503: {"description": "No run reads the source. Retry after Retry-After."},
    504: {"description": "A replying source's answer did not come in time."},
}


class RefusedError(Exception):
    """An answer other than success: status, message, headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def service_app(
    flow: rb.Flow,
    *,
    store: str | rb.Store | bool | None = False,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    options: dict[str, Any] | None = None,
) -> FastAPI:
    """The ASGI application serving ``flow``: its run starts with the application's
    lifespan and ends with it. ``store``: where the run is recorded (False: nowhere; then
    202 means queued, not durable); ``token``: the bearer token every endpoint but the
    health probes requires; ``max_body``: bytes a body may have; ``options``: more
    ``Flow.run`` options."""
    service = Service(flow, store=store, options=options)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            for close in app.state.closing:  # what was opened for the app (the dashboard's store)
                close()

    app = FastAPI(
        title=f"riverbed: {flow.name}",
        version=rb.__version__,
        description=f"Flow {flow.name!r} served by riverbed (docs/serve.md).",
        lifespan=lifespan,
    )
    app.state.service = service
    _errors(app)
    _probes(app, service)
    _events(app, service, max_body)
    _metrics(app, service)
    _schema_names_sources(app, sorted(service.sources))
    app.state.closing = []
    mount_ui(app, store, token)
    app.add_middleware(Guard, token=token, max_body=max_body)
    return app


def mount_ui(app: FastAPI, store: str | rb.Store | bool | None, token: str | None) -> None:
    """Mount the dashboard (docs/dashboard.md) at ``/ui``, over the service's store: the
    ``Store`` given, or one opened from its URL (None: the default store) and closed when
    the application stops. A service without a store (False) has no dashboard: it has no
    runs to show."""
    if store is False:
        return
    from riverbed._serve.ui import dashboard_app

    if isinstance(store, rb.Store):
        app.mount("/ui", dashboard_app(store, token=token))
        return
    opened = rb.open_store(rb.store_url(None if store in (None, True) else str(store)))
    app.mount("/ui", dashboard_app(opened, token=token))
    app.state.closing.append(opened.close)


def _errors(app: FastAPI) -> None:
    """Every error as ``{"error": message}``."""

    @app.exception_handler(RefusedError)
    async def refused(request: Request, error: RefusedError) -> Response:
        return _error(error.status, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        message = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
        if error.status_code == 404:
            message = f"no endpoint {request.url.path}: see /docs"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}: see /docs"
        return _error(error.status_code, message, dict(error.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        return _error(422, f"invalid request: {error.errors()!r:.500}")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status, headers, media_type="application/json")


def _probes(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", summary="The process is up (no token needed).")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="The flow's run reads every HTTP source (no token needed).",
        responses={503: {"description": "Not ready: starting, stopping or ended."}},
    )
    async def readyz() -> Response:
        ready = service.ready
        body = {
            "ready": ready,
            "flow": service.flow.name,
            "sources": {name: source.ready for name, source in service.sources.items()},
        }
        headers = None if ready else {"Retry-After": RETRY_AFTER}
        return JSONResponse(body, 200 if ready else 503, headers)


def _events(app: FastAPI, service: Service, max_body: int) -> None:
    @app.post(
        "/events/{source}",
        summary="Send one JSON event, or an array of events, to an HTTP source of the flow.",
        status_code=202,
        responses=_EVENTS_RESPONSES,
        openapi_extra={"requestBody": _EVENTS_BODY},
    )
    async def post_events(source: str, request: Request) -> Response:
        http = _source(service, source)
        events, array = _decode(await _body(request, max_body))
        if not http.ready:
            raise RefusedError(
                503,
                f"flow {service.flow.name!r} is not reading source {source!r} "
                "(starting, stopping or ended): retry later",
                {"Retry-After": RETRY_AFTER},
            )
        try:
            accepted = http.offer(events, durable=service.durable)
        except rb.SourceError as full:
            raise RefusedError(429, str(full), {"Retry-After": RETRY_AFTER}) from None
        if http.reply:
            return await _answers(http, accepted.answers, many=array)
        if accepted.durable is not None:
            try:
                await accepted.durable
            except rb.SourceError as stopped:
                raise RefusedError(
                    503,
                    f"{stopped}: the events were not durably accepted, send them again",
                    {"Retry-After": RETRY_AFTER},
                ) from None
        body = {"accepted": len(events), "durable": service.durable}
        return JSONResponse(body, 202)


def _schema_names_sources(app: FastAPI, names: list[str]) -> None:
    """The OpenAPI schema lists the flow's HTTP sources as the values of ``{source}``
    (clients and schema-driven tests then know them)."""
    made = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = made()
            for parameter in schema["paths"]["/events/{source}"]["post"]["parameters"]:
                if parameter["name"] == "source":
                    parameter["schema"]["enum"] = names
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _source(service: Service, name: str) -> rb.HTTPSource:
    source = service.sources.get(name)
    if source is None:
        known = ", ".join(sorted(service.sources))
        raise RefusedError(
            404, f"flow {service.flow.name!r} has no HTTP source {name!r}; it has: {known}"
        )
    return source


async def _body(request: Request, max_body: int) -> bytes:
    """The body, refused past ``max_body`` bytes (a chunked body declares no length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise RefusedError(
                413, f"the body is larger than this service takes ({max_body} bytes)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes) -> tuple[list[Any], bool]:
    """The events of a body: one JSON value, or the elements of a JSON array (and whether
    it was an array)."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        where = (
            f" at line {error.lineno} column {error.colno}"
            if isinstance(error, json.JSONDecodeError)
            else ""
        )
        raise RefusedError(
            400, f"the body is not JSON{where}: {error}; send one JSON event or an array of events"
        ) from None
    return (value, True) if isinstance(value, list) else ([value], False)


async def _answers(
    http: rb.HTTPSource, answers: list[asyncio.Future[Any]], *, many: bool
) -> Response:
    """A replying source's answers, or 504 once its timeout has passed."""
    try:
        bodies = await asyncio.wait_for(asyncio.gather(*answers), http.timeout)
    except TimeoutError:
        raise RefusedError(
            504, f"source {http.name!r}: the flow did not answer within {http.timeout:g} s"
        ) from None
    except rb.SourceError as ended:
        message = f"{ended}: the call was not answered, send it again"
        raise RefusedError(503, message, {"Retry-After": RETRY_AFTER}) from None
    return JSONResponse(bodies if many else bodies[0], 200)


def _metrics(app: FastAPI, service: Service) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    service.metrics.register(registry)
    render: Callable[[], bytes] = lambda: generate_latest(registry)  # noqa: E731

    @app.get(
        "/metrics",
        summary="Prometheus metrics of the flow's run (docs/serve.md).",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        return Response(render(), media_type=CONTENT_TYPE_LATEST)
