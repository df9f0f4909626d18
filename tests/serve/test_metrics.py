"""Prometheus metrics of a run: ``flow.run(metrics_port=...)`` serves them while the run
goes on, named as docs/serve.md lists them, their values the run's counters."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

import riverbed as rb
from tests.serve.conftest import free_port


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, by name and labels, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def _flow(release: threading.Event, count: int) -> rb.Flow:
    async def numbers():
        for number in range(count):
            yield number
        while not release.is_set():  # the run goes on until the test has scraped
            await __import__("asyncio").sleep(0.01)

    def check(n: int) -> int:
        if n % 10 == 3:
            raise ValueError("three")
        return n

    flow = rb.Flow("metered")
    flow.source(numbers, name="numbers").map(check, name="check", on_error=rb.OnError.SKIP).filter(
        lambda n: n % 2 == 0, name="even"
    ).sink(lambda n: None, name="out")
    return flow


def test_metrics_port_serves_the_live_counters_of_a_run() -> None:
    """While a run goes on, /metrics at metrics_port holds its counters, named as
    documented; they equal the counters of the run's result once it has read everything."""
    port = free_port()
    release = threading.Event()
    flow = _flow(release, 100)
    results: list[rb.RunResult] = []
    thread = threading.Thread(
        target=lambda: results.append(flow.run(store=False, metrics_port=port, batch_size=10))
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                samples = _samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
                if (
                    _value(
                        samples,
                        "riverbed_stage_events_total",
                        flow="metered",
                        stage="out",
                        direction="in",
                    )
                    == 50
                ):
                    break
            except (httpx.HTTPError, KeyError):
                pass
            assert time.monotonic() < deadline, "the metrics never showed the run's counts"
            time.sleep(0.05)
    finally:
        release.set()
        thread.join(10)
    result = results[0]
    for name, stats in result.stages.items():
        labels = {"flow": "metered", "stage": name}
        assert _value(samples, "riverbed_stage_events_total", direction="in", **labels) == (
            stats.events_in
        )
        assert _value(samples, "riverbed_stage_events_total", direction="out", **labels) == (
            stats.events_out
        )
        assert _value(samples, "riverbed_stage_errors_total", **labels) == stats.errors
        assert _value(samples, "riverbed_stage_skipped_total", **labels) == stats.skipped
    check = {"flow": "metered", "stage": "check"}
    assert _value(samples, "riverbed_stage_errors_total", **check) == 10
    batches = _value(samples, "riverbed_stage_batch_seconds_count", **check)
    assert batches >= 10  # a batch of 10 at a time, each timed
    assert _value(samples, "riverbed_stage_batch_seconds_bucket", le="+Inf", **check) == batches
    assert _value(samples, "riverbed_run_status", flow="metered", run_id="", status="running") == 1
    with pytest.raises(httpx.HTTPError):  # the server stops with the run
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_metrics_of_an_ended_run_with_checkpoints() -> None:
    """After a recorded run, the observer's metrics hold its final counters, its status and
    the checkpoints it committed (count, duration, bytes)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from riverbed._runtime.metrics import MetricsObserver

    flow = rb.Flow("counted")
    flow.source(range(50), name="numbers").key_by(lambda n: n % 5).fold(
        int, lambda total, n: total + n, name="sum"
    ).sink(lambda pair: None, name="out")
    observer = MetricsObserver("counted")
    registry = CollectorRegistry(auto_describe=False)
    observer.register(registry)
    committed: list[int] = []

    class Checkpoints(rb.RunObserver):
        def checkpoint(self, checkpoint_id: int) -> None:
            committed.append(checkpoint_id)

    result = flow.run(
        store="sqlite:///:memory:",
        checkpoint_events=10,
        batch_size=10,
        observers=[observer, Checkpoints()],
    )
    samples = _samples(generate_latest(registry).decode())
    for name, stats in result.stages.items():
        labels = {"flow": "counted", "stage": name}
        assert _value(samples, "riverbed_stage_events_total", direction="out", **labels) == (
            stats.events_out
        )
    status = {"flow": "counted", "run_id": result.run_id}
    assert _value(samples, "riverbed_run_status", status="succeeded", **status) == 1
    assert _value(samples, "riverbed_run_status", status="running", **status) == 0
    assert len(committed) >= 2
    assert _value(samples, "riverbed_checkpoint_seconds_count", flow="counted") == len(committed)
    assert _value(samples, "riverbed_checkpoint_bytes", flow="counted") > 0


def test_metrics_port_is_checked() -> None:
    """A metrics_port that is no port is refused, named."""
    flow = rb.Flow("bad")
    flow.source([1]).sink(lambda x: None)
    with pytest.raises(ValueError, match="metrics_port"):
        flow.run(store=False, metrics_port=-1)
