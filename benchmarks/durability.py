"""The durability workloads: W2 with checkpoints beside W2 without (W2C), and recovery after
SIGKILL (W7). W2C records its runs in an SQLite store of its own (a temporary file); W7 in
one, then in PostgreSQL.

W2C runs riverbed's W2 flow three ways, in each repeat one after the other: recorded in the
store without checkpoints, with a checkpoint every second, and with one every 0.1 s; the
ratio of each to the first is the cost of checkpointing (target: >= 0.9 at one second).

W7 starts W2 with checkpoints every second in a child process, kills it with SIGKILL at a
random moment after its first checkpoint, resumes it in a new process, and checks that the
resumed attempt started at its checkpoint's position (the id of the first event it
processed, and one mean emitted per event after it) and the final per-key means against the
plain computation; 3 kills on SQLite, then 10 on PostgreSQL (a fresh database of its own,
dropped afterwards). Resume time: from the start of the resuming process (before it imports
anything) to the first batch its sink receives after the state was restored; beside it, the
same for a fresh start of the same flow, so the difference is what resuming costs.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import riverbed as rb

from . import pgstats
from .measure import measure
from .workloads import LastMeans, RunningMean, check_w2, events, get_key

W2C_TARGET = 0.9
W7_KILLS = 3
W7_POSTGRES_KILLS = 10
W7_EVENTS = 6_000_000
POSTGRES_URL = os.environ.get(
    "RIVERBED_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
ROOT = Path(__file__).resolve().parents[1]


def _w2(n: int, store: str, interval: float | None) -> LastMeans:
    last = LastMeans()
    flow = rb.Flow("w2c")
    flow.source(functools.partial(events, n), name="events").key_by(get_key).stateful(
        RunningMean, RunningMean.add
    ).sink_batch(last.update_batch, name="last")
    options: dict[str, Any] = {"store": store, "batch_size": 1000, "progress": False}
    if interval is not None:
        options["checkpoint_interval"] = interval
    result = flow.run(**options)
    if not result.ok:
        raise RuntimeError(result.summary())
    return last


def run_w2c(events_count: int, repeats: int, log: Any) -> dict[str, Any]:
    """W2 with checkpoints every 1 s and 0.1 s beside W2 without, all recorded."""
    variants = {"none": None, "1s": 1.0, "0.1s": 0.1}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        store = f"sqlite:///{scratch}/w2c.db"
        _w2(10_000, store, 1.0)  # warm-up: imports, the schema
        for repeat in range(repeats):
            names = list(variants)
            names = names[repeat % 3 :] + names[: repeat % 3]
            for name in names:
                result = measure(functools.partial(_w2, events_count, store, variants[name]))
                wrong = check_w2(events_count, result.output)
                if wrong is not None:
                    failures[name] = wrong
                rates[name].append(events_count / result.seconds)
                log(
                    f"  W2C repeat {repeat + 1}/{repeats} checkpoints {name:<5} "
                    f"{rates[name][-1]:>12,.0f} ev/s"
                )
    ratio = {
        name: statistics.median(a / b for a, b in zip(rates[name], rates["none"], strict=True))
        for name in ("1s", "0.1s")
    }
    return {
        "workload": "W2C",
        "kind": "durability",
        "description": "W2 with checkpoints (SQLite store) against W2 without",
        "events": events_count,
        "repeats": repeats,
        "riverbed_eps": statistics.median(rates["1s"]),
        "no_checkpoint_eps": statistics.median(rates["none"]),
        "checkpoint_0_1s_eps": statistics.median(rates["0.1s"]),
        "ratio_checkpoint_1s": ratio["1s"],
        "ratio_checkpoint_0_1s": ratio["0.1s"],
        "runs_eps": rates,
        "targets": {"ratio_checkpoint_1s": W2C_TARGET},
        "targets_met": {"ratio_checkpoint_1s": ratio["1s"] >= W2C_TARGET},
        "failures": failures,
        "lines": [
            f"W2C: W2 with a checkpoint every 1 s runs at {ratio['1s']:.2f} of W2 without "
            f"(target >= {W2C_TARGET}: {'met' if ratio['1s'] >= W2C_TARGET else 'NOT met'}); "
            f"every 0.1 s at {ratio['0.1s']:.2f}; "
            f"{statistics.median(rates['none']):,.0f} ev/s recorded without checkpoints, "
            f"{events_count:,} events, medians of {repeats}"
        ],
    }


CHILD = """
import json, sys, time
started = time.perf_counter()
import riverbed as rb
from benchmarks.durability import child_flow
flow, sink, seen = child_flow(int(sys.argv[2]), started)
options = dict(store=sys.argv[1], checkpoint_interval=1.0, progress=False)
if sys.argv[3] == "resume":
    options["resume"] = sys.argv[4]
else:
    options["run_id"] = sys.argv[4]
result = flow.run(**options)
print(json.dumps({
    "first_batch": sink.first_batch, "first_id": seen.first_id, "emitted": sink.emitted,
    "status": result.status.value,
}))
"""


class _TimedSink:
    """Notes when its first batch arrives (seconds since the process started) and keeps
    each key's last mean in a JSON file, so the harness can check the final means."""

    def __init__(self, started: float, path: str) -> None:
        self.started = started
        self.first_batch: float | None = None
        self.emitted = 0
        self.path = path
        self.means: dict[str, float] = {}
        if os.path.exists(path):
            with open(path) as file:
                self.means = json.load(file)

    def write_batch(self, batch: list[tuple[int, float]]) -> None:
        if self.first_batch is None:
            self.first_batch = time.perf_counter() - self.started
        self.emitted += len(batch)
        for key, mean in batch:
            self.means[str(key)] = mean

    def close(self) -> None:
        with open(self.path, "w") as file:
            json.dump(self.means, file)


class _FirstSeen:
    """W7's key function: ``get_key``, noting the id of the first event this process's
    attempt processed (a resumed attempt must start at its checkpoint's position)."""

    def __init__(self) -> None:
        self.first_id: int | None = None

    def key(self, event: dict[str, Any]) -> int:
        if self.first_id is None:
            self.first_id = event["id"]
        return get_key(event)


def child_flow(n: int, started: float) -> tuple[rb.Flow, _TimedSink, _FirstSeen]:
    """W2 for the W7 child process; the sink's file is $W7_MEANS."""
    sink = _TimedSink(started, os.environ["W7_MEANS"])
    seen = _FirstSeen()
    flow = rb.Flow("w7")
    flow.source(functools.partial(events, n), name="events").key_by(seen.key).stateful(
        RunningMean, RunningMean.add
    ).sink(sink, name="last")
    return flow, sink, seen


def _child(store: str, n: int, mode: str, run_id: str, means: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}", W7_MEANS=means)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, store, str(n), mode, run_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _first_checkpoint(store: str, run_id: str, child: subprocess.Popen[str]) -> bool:
    """Wait until the child's run has committed its first checkpoint (a kill before it
    would resume from the start, proving nothing); False if the child ended first or none
    came within 60 s (a loaded machine, a slow first connection: not a fixed delay)."""
    deadline = time.monotonic() + 60
    time.sleep(0.5)  # the child opens (and on first use creates) the store first
    with rb.open_store(store) as opened:
        while child.poll() is None and time.monotonic() < deadline:
            try:
                if opened.latest_checkpoint(run_id) is not None:
                    return True
            except rb.RiverbedError:  # e.g. the run is not recorded yet
                pass
            time.sleep(0.05)
    return False


def _kill_and_resume(
    label: str, store: str, n: int, kills: int, scratch: str, rng: random.Random, log: Any
) -> dict[str, Any]:
    """``kills`` times: start W2 in a child, SIGKILL it at a random moment up to 1 s after
    its first checkpoint was committed, resume it in a new child; check that the resumed
    attempt started at its checkpoint's position (the id of the first event it processed)
    and the final means. Then one fresh start."""
    resumes: list[float] = []
    positions: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    exact = 0
    for kill in range(kills):
        run_id = uuid.uuid4().hex[:16]
        means = f"{scratch}/{run_id}.json"
        first = _child(store, n, "new", run_id, means)
        if _first_checkpoint(store, run_id, first):
            time.sleep(rng.uniform(0.0, 1.0))
        if first.poll() is not None:
            _, err = first.communicate()
            failures[f"{label} kill {kill}"] = f"the run ended before it was killed: {err[-500:]}"
            continue
        first.send_signal(signal.SIGKILL)
        first.communicate()
        with rb.open_store(store) as opened:
            checkpoint = opened.latest_checkpoint(run_id)
        if checkpoint is None:  # a resume from the start would prove nothing
            failures[f"{label} kill {kill}"] = "killed before its first checkpoint was committed"
            continue
        resumed = _child(store, n, "resume", run_id, means)
        out, err = resumed.communicate(timeout=300)
        if resumed.returncode != 0:
            failures[f"{label} kill {kill}"] = err[-2000:]
            continue
        report = json.loads(out.strip().splitlines()[-1])
        position = checkpoint.positions["events"]["0"]
        positions.append(
            {
                "checkpoint_id": checkpoint.checkpoint_id,
                "checkpoint_position": position,
                "resumed_first_id": report["first_id"],
            }
        )
        resumes.append(report["first_batch"])
        if report["first_id"] != position:
            failures[f"{label} kill {kill}"] = (
                f"the resumed attempt started at event {report['first_id']}, not at its "
                f"checkpoint's position {position}"
            )
        elif report["emitted"] != n - position:
            failures[f"{label} kill {kill}"] = (
                f"the resumed attempt emitted {report['emitted']} means, expected one per "
                f"event after its checkpoint: {n - position}"
            )
        with open(means) as file:
            # The sink is at-least-once across the kill (means after the checkpoint come
            # twice), so the count of means is checked on the resumed attempt, above.
            final = LastMeans({int(key): mean for key, mean in json.load(file).items()}, n)
        wrong = check_w2(n, final)
        if wrong is not None:
            failures[f"{label} kill {kill}"] = f"wrong final means: {wrong}"
        else:
            exact += 1
        log(
            f"  W7 {label} kill {kill + 1}/{kills}: checkpoint {checkpoint.checkpoint_id} "
            f"at event {position:,}; the resumed attempt started at event "
            f"{report['first_id']:,}; first batch {resumes[-1]:.3f} s after start"
        )
    baseline = _child(store, 10_000, "new", uuid.uuid4().hex[:16], f"{scratch}/{label}.json")
    out, _ = baseline.communicate(timeout=120)
    fresh = json.loads(out.strip().splitlines()[-1])["first_batch"]
    at_position = sum(1 for p in positions if p["resumed_first_id"] == p["checkpoint_position"])
    return {
        "kills": kills,
        "resumed": len(resumes),
        "resumed_at_checkpoint_position": at_position,
        "exact_final_means": exact,
        "positions": positions,
        "resume_first_batch_seconds": resumes,
        "resume_seconds_median": statistics.median(resumes) if resumes else None,
        "fresh_first_batch_seconds": fresh,
        "failures": failures,
    }


def _w7_line(label: str, figures: dict[str, Any]) -> str:
    if not figures["resumed"]:
        return f"W7 {label}: no resume measured ({figures['failures']})"
    starts = ", ".join(f"{p['resumed_first_id']:,}" for p in figures["positions"])
    return (
        f"W7 {label}: {figures['kills']} kills, {figures['resumed']} resumed, "
        f"{figures['resumed_at_checkpoint_position']} of them at their checkpoint's position "
        f"(first event ids {starts}), {figures['exact_final_means']} with exact final means; "
        f"first batch after a resume {figures['resume_seconds_median']:.3f} s after the "
        f"process started (a fresh start: {figures['fresh_first_batch_seconds']:.3f} s)"
    )


def run_w7(
    events_count: int,
    log: Any,
    kills: int = W7_KILLS,
    postgres_kills: int = W7_POSTGRES_KILLS,
    seed: int = 0,
) -> dict[str, Any]:
    """Kill W2 at random moments, resume it, on SQLite and on PostgreSQL (a fresh
    database, dropped afterwards); resume positions and times, the final means checked."""
    rng = random.Random(seed)
    # Long enough to be killed (1.5 to 2.5 s in) after a checkpoint and before its end,
    # whatever --events says: about 6 s on the development machine.
    n = max(events_count * 6, W7_EVENTS)
    stores: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        stores["sqlite"] = _kill_and_resume(
            "sqlite", f"sqlite:///{scratch}/w7.db", n, kills, scratch, rng, log
        )
        try:
            database = pgstats.create_database(POSTGRES_URL, "rbw7")
        except Exception as error:
            failures["postgres"] = f"PostgreSQL not usable at {POSTGRES_URL}: {error}"
        else:
            try:
                url = pgstats.with_database(POSTGRES_URL, database)
                stores["postgres"] = _kill_and_resume(
                    "postgres", url, n, postgres_kills, scratch, rng, log
                )
            finally:
                pgstats.drop_database(POSTGRES_URL, database)
    for figures in stores.values():
        failures.update(figures["failures"])
    lines = [_w7_line(label, figures) for label, figures in stores.items()]
    lines += [f"W7 postgres: not run ({failures['postgres']})"] if "postgres" in failures else []
    sqlite = stores["sqlite"]
    return {
        "workload": "W7",
        "kind": "durability",
        "description": "W2 with checkpoints every second, SIGKILL, resume (SQLite, PostgreSQL)",
        "events": n,
        "riverbed_eps": None,
        "resume_first_batch_seconds": sqlite["resume_first_batch_seconds"],
        "resume_seconds_median": sqlite["resume_seconds_median"],
        "fresh_first_batch_seconds": sqlite["fresh_first_batch_seconds"],
        "stores": stores,
        "failures": failures,
        "lines": lines,
    }
