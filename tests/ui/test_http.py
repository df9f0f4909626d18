"""The dashboard over HTTP (httpx against a real uvicorn on 127.0.0.1): its pages, its
JSON, its buttons and their guards, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

import riverbed as rb
from riverbed._serve.ui import dashboard_app
from riverbed.cli import app as cli_app
from tests.ui import ui_app
from tests.ui.server import free_port, serving

S = rb.RunStatus
YES = {"confirmed": "yes"}


class Client(httpx.Client):
    """A client of one served app, whose posts come from its own pages (Origin)."""

    def post(self, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        """POST, with this app's Origin unless the headers say otherwise."""
        headers = kwargs.pop("headers", {"Origin": str(self.base_url).rstrip("/")})
        return super().post(url, headers=headers, **kwargs)


@contextlib.contextmanager
def served(app: Any) -> Iterator[Client]:
    """A client of ``app`` served by uvicorn."""
    with serving(app) as base, Client(base_url=base, timeout=30) as client:
        yield client


@pytest.fixture
def app(store: rb.Store) -> Any:
    """The dashboard over ``store``."""
    return dashboard_app(store)


@pytest.fixture
def client(app: Any) -> Iterator[Client]:
    """A client of the dashboard ``app``, served by uvicorn."""
    with served(app) as serving_client:
        yield serving_client


def _record(n: int, flow: str = "flow", status: S = S.SUCCEEDED) -> rb.RunRecord:
    return rb.RunRecord(
        run_id=f"run{n:06d}",
        flow=flow,
        flow_version="v1",
        status=status,
        created_at=datetime.now(UTC) - timedelta(hours=120 - n),
    )


def _ids(page: str) -> list[str]:
    return re.findall(r"<code>(run\d{6})</code>", page)


def test_runs_list_filters_and_pages(store: rb.Store, client: Client) -> None:
    """The list shows the newest 50 runs, filters by flow, status and age, and its "older"
    link continues where the page ended."""
    for n in range(120):
        store.create_run(_record(n, flow="ab"[n % 2], status=S.FAILED if n % 5 else S.RUNNING))
    first = client.get("/").text
    assert _ids(first) == [f"run{n:06d}" for n in range(119, 69, -1)]
    older = re.search(r"class='older' href='/\?([^']+)'", first)
    assert older is not None
    second = client.get("/?" + older.group(1).replace("&amp;", "&")).text
    assert _ids(second)[0] == "run000069"
    assert _ids(client.get("/?flow=a&status=running").text) == [
        f"run{n:06d}" for n in range(110, -1, -10)
    ]
    recent = _ids(client.get("/?since=24h").text)  # run n was created 120 - n hours ago
    assert recent == [f"run{n:06d}" for n in range(119, 96, -1)]


def test_runs_json_pages_to_the_end(store: rb.Store, client: Client) -> None:
    """/api/runs gives each run once across its pages, with the cursor of the next."""
    for n in range(130):
        store.create_run(_record(n))
    seen: list[str] = []
    before = ""
    while True:
        page = client.get(f"/api/runs?before={before}").json()
        seen += [run["run_id"] for run in page["runs"]]
        if page["before"] is None:
            break
        before = page["before"]
    assert seen == [f"run{n:06d}" for n in range(129, -1, -1)]


def test_a_bad_filter_says_what_is_accepted(client: Client) -> None:
    """An unknown status is a 400 page naming the statuses."""
    answer = client.get("/?status=sleeping")
    assert answer.status_code == 400
    assert "no run status &#x27;sleeping&#x27;" in answer.text
    assert "succeeded" in answer.text


def test_run_page_shows_graph_stages_error_and_history(store: rb.Store, client: Client) -> None:
    """A failed run's page draws its flow (an edge per input), its stages' counters, its
    error with the traceback escaped, its history; its JSON has the same counters."""
    result = ui_app.fragile_flow.run(store=store, raise_on_failure=False, progress=False)
    page = client.get(f"/runs/{result.run_id}").text
    assert page.count('class="edge"') == 2  # numbers -> fragile -> keep
    assert ">fragile</text>" in page
    assert "seven is &lt;b&gt;broken&lt;/b&gt;" in page
    assert "<b>broken</b>" not in page
    assert "Traceback (most recent call last)" in page
    assert "/resume" in page
    assert "/rerun" in page
    assert "/cancel" not in page
    live = client.get(f"/api/runs/{result.run_id}/live").json()
    assert live["done"] is True
    assert live["fields"]["stage/numbers/events_out"] == str(result.stages["numbers"].events_out)
    assert live["run"]["status"] == "failed"


def test_a_run_a_button_is_starting_is_followed_before_it_is_claimed(
    store: rb.Store, app: Any, client: Client
) -> None:
    """Resume answers with the run's page before the run's thread has claimed the run: the
    page of a failed run that a button is starting follows it (it polls, and its JSON is
    not done), so that it shows the resumed run's end rather than the failure for ever."""
    result = ui_app.fragile_flow.run(store=store, raise_on_failure=False, progress=False)
    assert "data-live" not in client.get(f"/runs/{result.run_id}").text
    app.state.dashboard.actions.starting.add(result.run_id)  # its thread not yet at work
    assert "data-live" in client.get(f"/runs/{result.run_id}").text
    assert client.get(f"/api/runs/{result.run_id}/live").json()["done"] is False
    app.state.dashboard.actions.starting.discard(result.run_id)
    assert client.get(f"/api/runs/{result.run_id}/live").json()["done"] is True


def test_unknown_run_is_404(client: Client) -> None:
    """A run id that names nothing is a 404 page (JSON for the API)."""
    assert client.get("/runs/nosuchrun").status_code == 404
    answer = client.get("/api/runs/nosuchrun/live")
    assert answer.status_code == 404
    assert "no run 'nosuchrun'" in answer.json()["error"]


def test_posts_need_the_same_origin(store: rb.Store, client: Client) -> None:
    """A button press without an Origin of this host (another site's form) is refused."""
    run = _record(1, status=S.SCHEDULED)
    store.create_run(run)
    for headers in ({}, {"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}):
        answer = client.post(f"/runs/{run.run_id}/cancel", data=YES, headers=headers)
        assert answer.status_code == 403
    assert store.get_run(run.run_id).status is S.SCHEDULED
    referred = {"Referer": f"{client.base_url}/runs/{run.run_id}"}
    assert client.post(f"/runs/{run.run_id}/cancel", data=YES, headers=referred).status_code == 303


def test_token_is_required_everywhere(store: rb.Store) -> None:
    """With a token, a request without it is 401; a bearer header or the cookie that
    ?token= sets lets it in."""
    with served(dashboard_app(store, token="s3cret")) as client:
        _check_token(client)


def _check_token(client: Client) -> None:
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    opened = client.get("/?token=s3cret")
    assert opened.status_code == 200
    assert "httponly" in opened.headers["set-cookie"].lower()
    assert client.get("/queue").status_code == 200  # the cookie, from now on


def test_buttons_ask_first_then_cancel(store: rb.Store, client: Client) -> None:
    """An unconfirmed press shows a confirmation page and changes nothing; confirmed, the
    run is cancelled and its page says so; cancelling it again is a 409."""
    run = _record(1, status=S.SCHEDULED)
    store.create_run(run)
    asked = client.post(f"/runs/{run.run_id}/cancel")
    assert asked.status_code == 200
    assert "name='confirmed' value='yes'" in asked.text
    assert store.get_run(run.run_id).status is S.SCHEDULED
    done = client.post(f"/runs/{run.run_id}/cancel", data=YES)
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/runs/{run.run_id}?done=")
    assert store.get_run(run.run_id).status is S.CANCELLED
    again = client.post(f"/runs/{run.run_id}/cancel", data=YES)
    assert again.status_code == 409


def test_resume_and_rerun_buttons(
    store: rb.Store, app: Any, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the bug is fixed, Resume takes the failed run to SUCCEEDED; Re-run makes a new
    run recorded as its re-run."""
    failed = ui_app.fragile_flow.run(store=store, raise_on_failure=False, progress=False)
    monkeypatch.setattr(ui_app, "BROKEN", False)
    assert client.post(f"/runs/{failed.run_id}/resume", data=YES).status_code == 303
    app.state.dashboard.actions.join(30)
    assert store.get_run(failed.run_id).status is S.SUCCEEDED
    rerun = client.post(f"/runs/{failed.run_id}/rerun", data=YES)
    new_id = rerun.headers["location"].split("/runs/")[1].split("?")[0]
    app.state.dashboard.actions.join(30)
    assert store.get_run(new_id).rerun_of == failed.run_id
    assert store.get_run(new_id).status is S.SUCCEEDED


def test_a_resume_that_fails_is_shown_on_the_run_page(
    store: rb.Store, app: Any, client: Client
) -> None:
    """A button's run that cannot start (a run still running) says why on its page."""
    running = _record(1, status=S.RUNNING)
    store.create_run(running)
    store.update_run(running.run_id, worker="w", lease_until=datetime.now(UTC) + timedelta(1))
    client.post(f"/runs/{running.run_id}/resume", data=YES)
    app.state.dashboard.actions.join(30)
    page = client.get(f"/runs/{running.run_id}").text
    assert "class='problem'" in page


def test_dead_letters_replay_and_discard(
    store: rb.Store, app: Any, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The letters page shows the event escaped and the traceback; Replay (once fixed)
    feeds the event to the stage again and marks it; Discard deletes a pending one."""
    ui_app.lettered.run(store=store, progress=False)
    ui_app.lettered.run(store=store, progress=False)
    page = client.get("/letters").text
    assert "&lt;script&gt;window.pwned = 2&lt;/script&gt;" in page
    assert "<script>window" not in page
    assert "Traceback (most recent call last)" in page
    first, second = (letter.id for letter in store.dead_letters())
    monkeypatch.setattr(ui_app, "PICKY", False)
    replayed = client.post(f"/letters/{first}/replay", data=YES)
    assert replayed.status_code == 303
    app.state.dashboard.actions.join(30)
    assert [repr(x) for x in ui_app.SEEN if isinstance(x, ui_app.Evil)] == [repr(ui_app.Evil(2))]
    assert store.dead_letters(replayed=True)[0].id == first
    assert client.post(f"/letters/{second}/discard", data=YES).status_code == 303
    assert store.dead_letters() == store.dead_letters(replayed=True)
    assert client.post(f"/letters/{second}/discard", data=YES).status_code == 409


def test_queue_shows_scheduled_runs_and_leases(store: rb.Store, client: Client) -> None:
    """The queue page lists scheduled runs, next first, and each worker's leased run."""
    for n in (1, 2):
        store.enqueue(_record(n, status=S.SCHEDULED))
    claimed = store.claim("worker-7", lease_seconds=60)
    assert claimed is not None
    store.enqueue(_record(3, status=S.SCHEDULED))
    page = client.get("/queue").text
    assert _ids(page) == ["run000002", "run000003", "run000001"]
    assert "worker-7" in page


def test_queue_numbers_scheduled_runs_within_their_named_queue(
    store: rb.Store, client: Client
) -> None:
    """Runs waiting in named queues: each row says its queue, and its place is its place
    in that queue (the next run a worker of that queue takes is #1)."""
    for n, queue in ((1, "gpu"), (2, "default"), (3, "gpu")):
        store.enqueue(dataclasses.replace(_record(n, status=S.SCHEDULED), queue=queue))
    page = client.get("/queue").text
    rows = re.findall(r"<tr><td>(\w+)</td><td>(\d+)</td><td><a[^>]*><code>(run\d{6})", page)
    assert rows == [
        ("gpu", "1", "run000001"),
        ("default", "1", "run000002"),
        ("gpu", "2", "run000003"),
    ]


def test_mounted_under_a_prefix(store: rb.Store) -> None:
    """Mounted at /ui of another app, its links and buttons carry the prefix."""
    run = _record(1, status=S.SCHEDULED)
    store.create_run(run)
    parent = FastAPI()
    parent.mount("/ui", dashboard_app(store))
    with served(parent) as client:
        page = client.get("/ui/").text
        assert f"href='/ui/runs/{run.run_id}'" in page
        assert "/ui/static/dashboard.js" in page
        assert client.get("/ui/static/dashboard.js").status_code == 200
        asked = client.post(f"/ui/runs/{run.run_id}/cancel")
        assert f"action='/ui/runs/{run.run_id}/cancel'" in asked.text
        done = client.post(f"/ui/runs/{run.run_id}/cancel", data=YES)
        assert done.headers["location"].startswith("/ui/runs/")


def test_riverbed_ui_serves_the_dashboard(store_url: str) -> None:
    """`riverbed ui --store URL --port N` serves the runs list on 127.0.0.1:N."""
    with rb.open_store(store_url) as store:
        store.create_run(_record(1))
    port = free_port()
    command = [sys.executable, "-m", "riverbed", "ui", "--store", store_url, "--port", str(port)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as server:
        try:
            answer = _first_answer(f"http://127.0.0.1:{port}/", server)
        finally:
            server.terminate()
            server.wait(10)
    assert answer.status_code == 200
    assert "run000001" in answer.text


def _first_answer(url: str, server: subprocess.Popen[str]) -> httpx.Response:
    """The first answer of the server starting at ``url``."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "riverbed ui did not start"
            assert server.poll() is None, "riverbed ui exited"
            time.sleep(0.1)


def test_riverbed_ui_without_the_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without uvicorn, `riverbed ui` says to install the serve extra (exit 2)."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = CliRunner().invoke(cli_app, ["ui", "--store", f"sqlite:///{tmp_path}/s.db"])
    assert result.exit_code == 2
    assert "pip install 'riverbed[serve]'" in result.stderr


def test_workflow_run_page_shows_its_steps(store: rb.Store, client: Client) -> None:
    """A workflow run's page lists its steps in order with their status, and its input
    and output by their readable copies."""
    result = rb.run(ui_app.taxes, {"net": 10.0}, store=store, progress=False)
    page = client.get(f"/runs/{result.run_id}").text
    steps = page.split("<h2>Workflow steps</h2>")[1].split("</table>")[0]
    assert re.findall(r"<td>(add_tax|rounded)</td>", steps) == ["add_tax", "rounded"]
    assert steps.count("st-succeeded") == 2
    assert "{&#x27;net&#x27;: 10.0, &#x27;total&#x27;: 12}" in page


def test_a_rerun_that_cannot_start_says_why(store: rb.Store, app: Any, client: Client) -> None:
    """Re-run of a run whose flow does not load: the new run's page says why it did not
    start."""
    record = dataclasses.replace(_record(1), target="tests.ui.no_such_module:flow")
    store.create_run(record)
    answer = client.post(f"/runs/{record.run_id}/rerun", data=YES)
    app.state.dashboard.actions.join(30)
    page = client.get(answer.headers["location"]).text
    assert "did not start" in page
    assert "no_such_module" in page
