"""riverbed over HTTP: the interfaces that a browser or another program reach. They use
riverbed's public API and the one JSON form of its records, as any program would.

- ``app.py``: ``riverbed serve``'s ASGI application (``service_app``): ``POST
  /events/{source}``, health, readiness, ``/metrics``, OpenAPI; the dashboard at ``/ui``.
- ``service.py``: the served flow's run inside the application's lifespan.
- ``guard.py``: the bearer token and the body size limit, before any endpoint runs.
- ``ui/``: the web dashboard (``riverbed ui``, docs/dashboard.md).

FastAPI, uvicorn and prometheus_client come with ``pip install 'riverbed[serve]'``.
"""
