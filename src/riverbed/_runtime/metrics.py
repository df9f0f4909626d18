"""Prometheus metrics of a run: an observer (``MetricsObserver``) that keeps the run's live
counters and what it is told of checkpoints and status, and a prometheus_client collector
reading them when scraped (no per-event bookkeeping: a scrape reads the engine's own
counters, so the numbers are the run's, exactly). ``flow.run(metrics_port=...)`` serves
them over HTTP; ``riverbed serve`` at ``/metrics``. The names are listed in docs/serve.md.

prometheus_client is imported when metrics are asked for (``riverbed[serve]``), never with
``import riverbed``.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from riverbed._records import RunStatus
from riverbed._runtime.observer import RunObserver
from riverbed._runtime.result import LATENCY_BUCKETS, RunResult, StageCounters

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from riverbed._records import RunRecord

__all__ = ["CHECKPOINT_BUCKETS", "MetricsObserver", "prometheus", "serve_metrics"]

logger = logging.getLogger("riverbed")

CHECKPOINT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""Upper bounds (seconds) of the checkpoint duration histogram's buckets."""

_COUNTS = (
    # (metric name, StageCounters attribute, help)
    ("riverbed_stage_errors_total", "errors", "Calls of the stage that raised."),
    ("riverbed_stage_retries_total", "retries", "Calls of the stage retried."),
    ("riverbed_stage_skipped_total", "skipped", "Events the stage's policy skipped."),
    ("riverbed_stage_dead_letters_total", "dead_lettered", "Events sent to the dead letters."),
    ("riverbed_stage_dropped_total", "dropped", "Events dropped (late, expired, sampled out)."),
    ("riverbed_stage_busy_seconds_total", "seconds", "Seconds the stage spent on its batches."),
)


def prometheus() -> Any:
    """The prometheus_client module, or an ImportError saying which extra to install."""
    try:
        import prometheus_client
        import prometheus_client.core  # the metric families, for collectors
    except ImportError as error:
        raise ImportError(
            "metrics need prometheus_client: pip install 'riverbed[serve]'"
        ) from error
    return prometheus_client


class MetricsObserver(RunObserver):
    """Keeps what metrics report of one flow's runs: the live counters (taken from the
    first ``counters`` call, read again at each scrape), checkpoints and the run's
    status. ``register(registry)`` adds its collector to a prometheus_client registry
    (``riverbed serve`` does, for ``/metrics``; so can an application of your own).

    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> metrics, registry = rb.MetricsObserver("hello"), CollectorRegistry()
    >>> metrics.register(registry)
    >>> flow = rb.Flow("hello")
    >>> flow.source([1, 2]).sink(lambda x: None, name="out")
    >>> result = flow.run(store=False, observers=[metrics])
    >>> b'riverbed_stage_events_total{direction="in",flow="hello",stage="out"} 2.0' in (
    ...     generate_latest(registry))
    True
    """

    __module__ = "riverbed"
    counters_every = 1.0

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.run_id = ""
        self.status: RunStatus = RunStatus.RUNNING
        self.stages: Mapping[str, StageCounters] = {}
        self.checkpoints = 0
        self.checkpoint_seconds = 0.0
        self.checkpoint_buckets = [0] * (len(CHECKPOINT_BUCKETS) + 1)
        self.checkpoint_bytes = 0

    def started(self, run: RunRecord) -> None:
        self.run_id = run.run_id
        self.status = run.status

    def counters(self, stages: Mapping[str, StageCounters]) -> None:
        self.stages = stages  # the live counters: read at each scrape

    def checkpoint_cost(self, checkpoint_id: int, seconds: float, size: int) -> None:
        self.checkpoints += 1
        self.checkpoint_seconds += seconds
        self.checkpoint_buckets[bisect.bisect_left(CHECKPOINT_BUCKETS, seconds)] += 1
        self.checkpoint_bytes = size

    def ended(self, result: RunResult) -> None:
        self.run_id = result.run_id
        self.status = result.status
        live = dict(self.stages)
        final: dict[str, StageCounters] = {}
        for name, stats in result.stages.items():  # the final counts, latency kept
            counters = StageCounters(name, stats.kind, stats.fused_with)
            counters.restore(stats.to_dict())
            if name in live:
                counters.latency = list(live[name].latency)
            final[name] = counters
        self.stages = final

    def register(self, registry: CollectorRegistry) -> None:
        """Report this observer's metrics in ``registry``."""
        registry.register(_Collector(self))

    def collect(self) -> Iterator[Any]:
        """The metric families as they stand (prometheus_client's collector protocol)."""
        core = prometheus().core
        flow = self.flow
        stages = list(self.stages.values())
        events = core.CounterMetricFamily(
            "riverbed_stage_events",
            "Events into and out of each stage.",
            labels=["flow", "stage", "direction"],
        )
        for stage in stages:
            events.add_metric([flow, stage.name, "in"], stage.events_in)
            events.add_metric([flow, stage.name, "out"], stage.events_out)
        yield events
        for metric, attribute, text in _COUNTS:
            family = core.CounterMetricFamily(
                metric.removesuffix("_total"), text, labels=["flow", "stage"]
            )
            for stage in stages:
                family.add_metric([flow, stage.name], getattr(stage, attribute))
            yield family
        yield self._latency(core, stages)
        backlog = core.GaugeMetricFamily(
            "riverbed_stage_backlog_batches",
            "Batches waiting in the stage's input channel (local runner).",
            labels=["flow", "stage"],
        )
        for stage in stages:
            backlog.add_metric([flow, stage.name], stage.backlog)
        yield backlog
        yield from self._checkpoints(core)
        status = core.GaugeMetricFamily(
            "riverbed_run_status",
            "1 for the status the flow's current run is in, 0 for the others.",
            labels=["flow", "run_id", "status"],
        )
        for each in RunStatus:
            status.add_metric([flow, self.run_id, each.value], float(each is self.status))
        yield status

    def _latency(self, core: Any, stages: list[StageCounters]) -> Any:
        family = core.HistogramMetricFamily(
            "riverbed_stage_batch_seconds",
            "Seconds a stage took to process one batch (its chain's, for fused stages).",
            labels=["flow", "stage"],
        )
        for stage in stages:
            if stage.kind.value == "source":
                continue  # a source's time is mostly waiting for input: no latency
            family.add_metric(
                [self.flow, stage.name], _cumulative(stage.latency, LATENCY_BUCKETS), stage.seconds
            )
        return family

    def _checkpoints(self, core: Any) -> Iterator[Any]:
        seconds = core.HistogramMetricFamily(
            "riverbed_checkpoint_seconds",
            "Seconds each checkpoint took to commit to the store.",
            labels=["flow"],
        )
        seconds.add_metric(
            [self.flow],
            _cumulative(self.checkpoint_buckets, CHECKPOINT_BUCKETS),
            self.checkpoint_seconds,
        )
        yield seconds
        size = core.GaugeMetricFamily(
            "riverbed_checkpoint_bytes",
            "Bytes of state the last checkpoint wrote.",
            labels=["flow"],
        )
        size.add_metric([self.flow], self.checkpoint_bytes)
        yield size


class _Collector:
    """The collector prometheus_client asks at each scrape (a plain object with
    ``collect``, as its protocol asks)."""

    def __init__(self, observer: MetricsObserver) -> None:
        self.observer = observer

    def collect(self) -> Iterator[Any]:
        return self.observer.collect()


def _cumulative(counts: list[int], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    """Per-bucket counts as prometheus_client's cumulative ``(le, count)`` buckets."""
    buckets, total = [], 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
    return buckets


class _Served(MetricsObserver):
    """A ``MetricsObserver`` with its own HTTP server, stopped when the run ends."""

    def __init__(self, flow: str, port: int, host: str) -> None:
        super().__init__(flow)
        client = prometheus()
        registry = client.CollectorRegistry(auto_describe=False)
        self.register(registry)
        self.server, self.thread = client.start_http_server(port, addr=host, registry=registry)
        logger.info("metrics of flow %r at http://%s:%d/metrics", flow, host, port)

    def ended(self, result: RunResult) -> None:
        super().ended(result)
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(flow: str, port: int, host: str = "127.0.0.1") -> MetricsObserver:
    """An observer serving the metrics of a run of ``flow`` at
    ``http://host:port/metrics`` until the run ends (``metrics_port`` of ``Flow.run``)."""
    return _Served(flow, port, host)
