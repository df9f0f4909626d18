"""The HTTP service (``riverbed serve``) driven with httpx against a real uvicorn server:
events in, answers out, backpressure, durability, auth, limits and bad input."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

import riverbed as rb
from tests.serve.server import serving, serving_command


def _collecting(name: str = "collect", capacity: int = 10_000) -> tuple[rb.Flow, list]:
    seen: list = []
    flow = rb.Flow(name)
    flow.source(rb.http("web", capacity=capacity), name="web").sink(seen.append, name="out")
    return flow, seen


def test_events_one_or_an_array_reach_the_flow() -> None:
    """One JSON value is one event, an array is one event per element: 202, in order."""
    flow, seen = _collecting()
    with serving(flow) as url:
        one = httpx.post(f"{url}/events/web", json={"a": 1})
        many = httpx.post(f"{url}/events/web", json=[1, "two", None, [3]])
        assert one.status_code == many.status_code == 202
        assert many.json() == {"accepted": 4, "durable": False}
    assert seen == [{"a": 1}, 1, "two", None, [3]]


def test_replies_answer_their_own_calls_among_1000_concurrent() -> None:
    """``riverbed serve`` of a replying flow: 1,000 calls in flight at once (one connection
    each) each get their own answer, though answers come out of order; an array gets the
    list of its answers."""

    async def client(url: str, numbers: range) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(numbers))
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            return await asyncio.gather(
                *(http.post("/events/double", json={"n": n}) for n in numbers)
            )

    async def calls(url: str) -> list[httpx.Response]:
        # Twenty clients of fifty connections: httpx's pool slows down past that.
        parts = await asyncio.gather(*(client(url, range(k, 1000, 20)) for k in range(20)))
        return sorted((r for part in parts for r in part), key=lambda r: r.json()["n"])

    with serving_command("tests.serve.apps:doubling") as url:
        answers = asyncio.run(calls(url))
        array = httpx.post(f"{url}/events/double", json=[{"n": 1}, {"n": 2}])
    assert [a.status_code for a in answers] == [200] * 1000
    assert [a.json() for a in answers] == [{"n": n, "double": 2 * n} for n in range(1000)]
    assert array.json() == [{"n": 1, "double": 2}, {"n": 2, "double": 4}]


def test_the_command_takes_its_token_from_the_environment() -> None:
    """``riverbed serve`` asks for RIVERBED_TOKEN when it is set."""
    with serving_command("tests.serve.apps:doubling", env={"RIVERBED_TOKEN": "t0k"}) as url:
        refused = httpx.post(f"{url}/events/double", json={"n": 1})
        answered = httpx.post(
            f"{url}/events/double", json={"n": 1}, headers={"Authorization": "Bearer t0k"}
        )
    assert refused.status_code == 401
    assert answered.json() == {"n": 1, "double": 2}


def test_a_reply_that_does_not_come_is_a_504() -> None:
    """A call whose answer does not come within the source's timeout gets 504."""
    flow = rb.Flow("silent")
    flow.source(rb.http("ask", reply=True, timeout=0.2), name="ask").sink(lambda r: None)
    with serving(flow) as url:
        response = httpx.post(f"{url}/events/ask", json=1)
    assert response.status_code == 504
    assert "did not answer within 0.2 s" in response.json()["error"]


def test_a_full_source_answers_429_then_recovers() -> None:
    """When the flow falls behind, the endpoint answers 429 with Retry-After instead of
    queueing more; once the flow catches up, events are accepted again."""
    gate = threading.Event()
    seen: list = []

    async def slow(event: int) -> int:
        while not gate.is_set():
            await asyncio.sleep(0.01)
        return event

    flow = rb.Flow("behind")
    flow.source(rb.http("web", capacity=5), name="web").map(slow).sink(seen.append)
    settings = {"options": {"channel_capacity": 1, "batch_size": 1}}
    with serving(flow, **settings) as url, httpx.Client(base_url=url) as client:
        statuses = [client.post("/events/web", json=n).status_code for n in range(30)]
        full = client.post("/events/web", json=99)
        assert full.status_code == 429
        assert full.headers["retry-after"] == "1"
        assert "capacity 5" in full.json()["error"]
        gate.set()
        deadline = time.monotonic() + 10
        while client.post("/events/web", json=100).status_code != 202:
            assert time.monotonic() < deadline, "the service never accepted events again"
            time.sleep(0.05)
    assert 202 in statuses
    assert statuses.count(202) < 30
    accepted = [n for n, status in enumerate(statuses) if status == 202]
    assert seen[: len(accepted)] == accepted  # what was accepted, in order, none lost


def test_with_a_store_202_comes_after_the_checkpoint_holding_the_events(tmp_path) -> None:
    """With a store, 202 is sent once a committed checkpoint holds the events: the store's
    last checkpoint then has the source read past them."""
    url_of_store = f"sqlite:///{tmp_path}/serve.db"
    flow, _seen = _collecting("durable")
    with serving(flow, store=url_of_store, options={"checkpoint_interval": 0.3}) as url:
        sent = httpx.post(f"{url}/events/web", json=list(range(25)))
        assert sent.status_code == 202
        assert sent.json() == {"accepted": 25, "durable": True}
        with rb.open_store(url_of_store) as store:
            (run,) = store.list_runs()
            checkpoint = store.latest_checkpoint(run.run_id)
            assert checkpoint is not None
            assert checkpoint.positions["web"]["0"] >= 25


def test_bearer_token_is_required_except_for_health() -> None:
    """With a token, every endpoint but the health probes answers 401 without it."""
    flow, _seen = _collecting()
    with serving(flow, token="s3cret") as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
        missing = httpx.post(f"{url}/events/web", json=1)
        wrong = httpx.post(f"{url}/events/web", json=1, headers={"Authorization": "Bearer no"})
        right = httpx.post(f"{url}/events/web", json=1, headers={"Authorization": "Bearer s3cret"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "bearer token is required" in missing.json()["error"]
    assert "wrong" in wrong.json()["error"]
    assert right.status_code == 202


def test_bodies_over_the_limit_are_refused_declared_or_chunked() -> None:
    """A body larger than max_body is a 413, whether it declares its length or not."""
    flow, seen = _collecting()

    def chunks():
        yield b"[" + b"1," * 100
        yield b"1]"

    with serving(flow, max_body=100) as url:
        declared = httpx.post(f"{url}/events/web", json=list(range(100)))
        chunked = httpx.post(f"{url}/events/web", content=chunks())
        small = httpx.post(f"{url}/events/web", json=[1, 2])
    assert declared.status_code == chunked.status_code == 413
    assert "100 bytes" in declared.json()["error"]
    assert "100 bytes" in chunked.json()["error"]
    assert small.status_code == 202
    assert seen == [1, 2]


@pytest.mark.parametrize("body", [b"{nope", b"", b"\xff\xfe", b"[1, 2"])
def test_a_body_that_is_not_json_is_a_400_saying_so(body: bytes) -> None:
    """What is not JSON is refused with 400 and a message; nothing reaches the flow."""
    flow, seen = _collecting()
    with serving(flow) as url:
        response = httpx.post(
            f"{url}/events/web", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]
    assert seen == []


def test_unknown_source_and_path_are_404s_naming_what_exists() -> None:
    """An unknown source is a 404 naming the flow's HTTP sources."""
    flow, _seen = _collecting()
    with serving(flow) as url:
        response = httpx.post(f"{url}/events/nope", json=1)
        nowhere = httpx.get(f"{url}/nowhere")
    assert response.status_code == 404
    assert "has no HTTP source 'nope'; it has: web" in response.json()["error"]
    assert nowhere.status_code == 404
    assert "error" in nowhere.json()


def test_openapi_docs_readiness_and_metrics() -> None:
    """The OpenAPI schema and page are served; /readyz says the run reads its sources;
    /metrics counts the events taken."""
    from prometheus_client.parser import text_string_to_metric_families

    flow, _seen = _collecting("observed")
    with serving(flow) as url:
        schema = httpx.get(f"{url}/openapi.json").json()
        assert "/events/{source}" in schema["paths"]
        assert httpx.get(f"{url}/docs").status_code == 200
        ready = httpx.get(f"{url}/readyz")
        assert ready.json() == {"ready": True, "flow": "observed", "sources": {"web": True}}
        httpx.post(f"{url}/events/web", json=list(range(7)))
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"{url}/metrics").text
            values = {
                (s.name, s.labels.get("stage"), s.labels.get("direction")): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            if values.get(("riverbed_stage_events_total", "out", "in")) == 7:
                break
            assert time.monotonic() < deadline, "the metrics never counted the events"
            time.sleep(0.05)
        assert values["riverbed_stage_events_total", "web", "out"] == 7


def test_when_the_run_has_failed_calls_and_events_get_503() -> None:
    """A run that fails (a stage stops it) answers the call in flight with 503 instead of
    leaving it to time out; from then on /readyz and every POST answer 503 with
    Retry-After."""

    def explode(request: rb.Request) -> rb.Reply:
        raise RuntimeError("boom")

    flow = rb.Flow("failing")
    flow.source(rb.http("ask", reply=True, timeout=30), name="ask").map(explode).sink(rb.reply())
    with serving(flow) as url:
        started = time.monotonic()
        call = httpx.post(f"{url}/events/ask", json=1, timeout=30)
        assert time.monotonic() - started < 10  # not left to its 30 s timeout
        ready = httpx.get(f"{url}/readyz")
        later = httpx.post(f"{url}/events/ask", json=2)
    assert call.status_code == 503
    assert "has ended" in call.json()["error"]
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert later.status_code == 503
    assert later.headers["retry-after"] == "1"
    assert "is not reading source 'ask'" in later.json()["error"]


def test_the_dashboard_is_at_ui_over_the_services_store(tmp_path) -> None:
    """``/ui`` of a service with a store is the dashboard of that store, showing the
    served run; with a token, it asks for the token (a browser's ``?token=`` link works,
    as the bearer header does); a service without a store has no dashboard."""
    url_of_store = f"sqlite:///{tmp_path}/serve.db"
    flow, _seen = _collecting("dashboarded")
    with serving(flow, store=url_of_store, token="s3cret") as url:
        refused = httpx.get(f"{url}/ui/")
        page = httpx.get(f"{url}/ui/?token=s3cret")
        with rb.open_store(url_of_store) as store:
            (run,) = store.list_runs()
    assert refused.status_code == 401
    assert "needs its token" in refused.text
    assert page.status_code == 200
    assert run.run_id in page.text
    assert "dashboarded" in page.text
    flow, _seen = _collecting("storeless")
    with serving(flow) as url:
        assert httpx.get(f"{url}/ui/").status_code == 404
