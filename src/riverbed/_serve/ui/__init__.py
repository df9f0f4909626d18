"""The web dashboard: a store's runs, their stages, checkpoints, errors and dead letters,
the run queue and its workers, with buttons to resume, re-run, cancel, replay and discard.

``dashboard_app(store)`` makes it, an ASGI app (FastAPI) that ``riverbed ui`` serves and
that can be mounted under a prefix of another app (``/ui`` of ``riverbed serve``). Pages
are rendered on the server from the store's records (every user-supplied text escaped);
a run page follows a running run through a small JSON endpoint polled by the ~50 lines of
``static/dashboard.js`` shipped here: no CDN, no build step. See docs/dashboard.md.
"""

from riverbed._serve.ui.app import dashboard_app

__all__ = ["dashboard_app"]
