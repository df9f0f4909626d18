"""``dashboard_app(store)``: the dashboard as an ASGI app (FastAPI), its pages and buttons.

Paths are relative to where the app is mounted (``/`` for ``riverbed ui``, ``/ui`` under
``riverbed serve``): links are built from the request's ``root_path``.

| path | what |
| --- | --- |
| ``GET /`` | runs, newest first: ``?flow=&status=&since=1h|24h|7d&before=RUN`` |
| ``GET /runs/{run}`` | a run's page |
| ``GET /api/runs``, ``GET /api/runs/{run}/live`` | the same, as JSON |
| ``POST /runs/{run}/resume`` ``/rerun`` ``/cancel`` | the run's buttons |
| ``GET /letters`` | dead letters: ``?run=&stage=&replayed=1`` |
| ``POST /letters/{id}/replay`` ``/discard`` | a dead letter's buttons |
| ``GET /queue`` | scheduled runs and the workers' leases |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

import riverbed as rb
from riverbed._serve.ui import guard
from riverbed._serve.ui.actions import Actions, NotPendingError
from riverbed._serve.ui.chart import Samples
from riverbed._serve.ui.flows import FlowGraphs
from riverbed._serve.ui.html import Html, h, page
from riverbed._serve.ui.letters_view import LetterFilters, letters_body
from riverbed._serve.ui.queue_view import queue_body
from riverbed._serve.ui.run_view import live, run_body
from riverbed._serve.ui.runs_view import RunFilters, runs_body

__all__ = ["dashboard_app"]

_CONFLICTS = (rb.InvalidTransitionError, rb.RunNotResumableError, NotPendingError)
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


class _Dashboard:
    """The dashboard's state on one store: what its pages and buttons share."""

    def __init__(self, store: rb.Store) -> None:
        self.store = store
        self.actions = Actions(store)
        self.graphs = FlowGraphs()
        self.samples = Samples()

    def page(self, request: Request, title: str, body: Html, status: int = 200) -> HTMLResponse:
        """A whole page around ``body``, with the notice the last button left (``?done=``)."""
        base = request.scope.get("root_path", "")
        links = {
            "runs": f"{base}/",
            "letters": f"{base}/letters",
            "queue": f"{base}/queue",
            "css": f"{base}/static/dashboard.css",
            "js": f"{base}/static/dashboard.js",
            "store": self.store.url,
        }
        notice = request.query_params.get("done")
        return HTMLResponse(page(title, body, links=links, notice=notice), status_code=status)

    def problem(self, request: Request, status: int, message: str) -> Response:
        """A refusal or an error: JSON for the API, else a page saying what was wrong."""
        if request.url.path.startswith(f"{request.scope.get('root_path', '')}/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return self.page(
            request, "Error", f"<h1>Error</h1><p class='problem'>{h(message)}</p>", status
        )


def _errors(dash: _Dashboard, request: Request, work: Callable[[], Response]) -> Response:
    """``work()``, its expected failures turned into pages that say what was wrong."""
    try:
        return work()
    except rb.RunNotFoundError as error:
        return dash.problem(request, 404, str(error))
    except _CONFLICTS as error:
        return dash.problem(request, 409, str(error))
    except ValueError as error:  # a filter that does not parse
        return dash.problem(request, 400, str(error))


def _add_pages(app: FastAPI, dash: _Dashboard) -> None:
    """The pages that only look."""

    @app.get("/", response_class=HTMLResponse)
    def runs(
        request: Request, flow: str = "", status: str = "", since: str = "", before: str = ""
    ) -> Response:
        def work() -> Response:
            filters = RunFilters.parse(flow, status, since, before)
            base = request.scope.get("root_path", "")
            return dash.page(request, "Runs", runs_body(dash.store, filters, base))

        return _errors(dash, request, work)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: str) -> Response:
        def work() -> Response:
            base = request.scope.get("root_path", "")
            failure = dash.actions.failures.get(run_id)
            note = f"<p class='problem'>{h(failure)}</p>" if failure else ""
            try:
                starting = run_id in dash.actions.starting
                body = run_body(
                    dash.store, dash.graphs, dash.samples, run_id, base, starting=starting
                )
            except rb.RunNotFoundError:
                if run_id in dash.actions.starting:  # a button's run, not stored yet
                    body = (
                        f"<h1>Run <code>{h(run_id)}</code></h1><p>Starting…</p>"
                        "<meta http-equiv='refresh' content='1'>"
                    )
                elif failure:  # a button's run that could not start
                    body = f"<h1>Run <code>{h(run_id)}</code> did not start</h1>"
                else:
                    raise
            return dash.page(request, f"Run {run_id}", note + body)

        return _errors(dash, request, work)

    @app.get("/letters", response_class=HTMLResponse)
    def letters(request: Request, run: str = "", stage: str = "", replayed: str = "") -> Response:
        filters = LetterFilters(run or None, stage or None, replayed in ("1", "true", "yes"))
        base = request.scope.get("root_path", "")
        return _errors(
            dash,
            request,
            lambda: dash.page(request, "Dead letters", letters_body(dash.store, filters, base)),
        )

    @app.get("/queue", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        base = request.scope.get("root_path", "")
        return dash.page(request, "Queue", queue_body(dash.store, base))

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        text = resources.files(__package__).joinpath("static", name).read_text("utf-8")
        return Response(text, media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


def _add_api(app: FastAPI, dash: _Dashboard) -> None:
    """The JSON the pages poll, and the runs list as JSON."""

    @app.get("/api/runs")
    def api_runs(
        request: Request, flow: str = "", status: str = "", since: str = "", before: str = ""
    ) -> Response:
        def work() -> Response:
            runs, more = RunFilters.parse(flow, status, since, before).runs(dash.store)
            return JSONResponse(
                {
                    "runs": [run.to_dict() for run in runs],
                    "before": runs[-1].run_id if more else None,
                }
            )

        return _errors(dash, request, work)

    @app.get("/api/runs/{run_id}/live")
    def api_live(request: Request, run_id: str) -> Response:
        def work() -> Response:
            starting = run_id in dash.actions.starting
            return JSONResponse(live(dash.store, dash.samples, run_id, starting=starting))

        return _errors(dash, request, work)


def _confirm_page(dash: _Dashboard, request: Request, what: str) -> Response:
    """The server's own "are you sure?" (a browser without the page's script)."""
    body = (
        f"<h1>Confirm</h1><p>{h(what)}?</p><form method='post' action='{h(request.url.path)}'>"
        "<input type='hidden' name='confirmed' value='yes'>"
        "<button type='submit' class='primary'>Yes</button></form>"
    )
    return dash.page(request, "Confirm", body)


async def _act(
    dash: _Dashboard,
    request: Request,
    what: str,
    do: Callable[[], str],
    to: Callable[[str], str],
) -> Response:
    """A button's press: unconfirmed, the confirmation page; confirmed, ``do()`` (in a
    worker thread: it calls the store) and a redirect to the page ``to`` its result."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    if form.get("confirmed") != ["yes"]:
        return _confirm_page(dash, request, what)

    def work() -> Response:
        return RedirectResponse(to(do()), status_code=303)

    return await run_in_threadpool(_errors, dash, request, work)


def _run_page(request: Request, done: str) -> Callable[[str], str]:
    """Where a button that touched a run goes: the run's page, saying ``done``."""
    base = request.scope.get("root_path", "")
    return lambda run_id: f"{base}/runs/{quote(run_id)}?done={quote(done)}"


_RUN_DONE = {"resume": "run resumed", "rerun": "run started as a re-run", "cancel": "run cancelled"}


def _add_buttons(app: FastAPI, dash: _Dashboard) -> None:
    """The buttons: each asks first, then acts and shows the page of what it touched."""
    runs = {
        "resume": dash.actions.resume,
        "rerun": dash.actions.rerun,
        "cancel": dash.actions.cancel,
    }

    @app.post("/runs/{run_id}/{action}")
    async def run_button(request: Request, run_id: str, action: str) -> Response:
        if action not in runs:
            return dash.problem(request, 404, f"no action {action!r}: resume, rerun or cancel")
        return await _act(
            dash,
            request,
            f"{action} run {run_id}",
            lambda: runs[action](run_id),
            _run_page(request, _RUN_DONE[action]),
        )

    @app.post("/letters/{letter_id}/{action}")
    async def letter_button(request: Request, letter_id: int, action: str) -> Response:
        what = f"{action} dead letter #{letter_id}"
        if action == "replay":
            replaying = _run_page(request, f"replaying dead letter #{letter_id}")
            return await _act(
                dash, request, what, lambda: dash.actions.replay(letter_id), replaying
            )
        if action == "discard":
            letters = f"{request.scope.get('root_path', '')}/letters"
            done = quote(f"discarded dead letter #{letter_id}")
            return await _act(
                dash,
                request,
                what,
                lambda: str(dash.actions.discard(letter_id)),
                lambda _: f"{letters}?done={done}",
            )
        return dash.problem(request, 404, f"no action {action!r}: replay or discard")


def dashboard_app(store: rb.Store, *, token: str | None = None) -> FastAPI:
    """The dashboard over ``store`` (open; the caller closes it after the app is done), as
    a FastAPI app: serve it (``uvicorn.run(app)``) or mount it (``parent.mount("/ui",
    app)``). With ``token``, every request must show it (see ``guard``)."""
    app = FastAPI(title="riverbed dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    dash = _Dashboard(store)
    app.state.dashboard = dash

    @app.middleware("http")
    async def protect(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        verdict = guard.check(request, token)
        if verdict is not None:
            return dash.problem(request, *verdict)
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
        )
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(guard.COOKIE, token, httponly=True, samesite="strict")
        return response

    _add_pages(app, dash)
    _add_api(app, dash)
    _add_buttons(app, dash)
    return app
