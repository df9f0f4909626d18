"""``riverbed serve``: a flow run as an HTTP service on FastAPI and uvicorn (docs/serve.md).

- ``app.py``: the ASGI application (``service_app``): ``POST /events/{source}``, health,
  readiness, ``/metrics``, OpenAPI; the dashboard mounted at ``/ui`` when there is one.
- ``service.py``: the flow's run inside the application's lifespan.
- ``guard.py``: the bearer token and the body size limit, before any endpoint runs.

An interface: it uses riverbed's public API only. FastAPI, uvicorn and prometheus_client
come with ``pip install 'riverbed[serve]'``.
"""
