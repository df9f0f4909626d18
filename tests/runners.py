"""Why a test that runs on every runner (``on_runner``) runs on the local one only: one
marker per reason, so that the reasons stay few and stated once."""

from __future__ import annotations

import pytest

test_clock = pytest.mark.local_only("a test's clock drives the local runner only")
"""The test moves time with a ``TestClock``, which cannot move time in Ray's workers."""

shared_objects = pytest.mark.local_only(
    "it watches calls through a closure or object of the test's process, which Ray's "
    "workers do not share"
)
"""The test counts calls or events in an object its stages change in place: on Ray those
stages change a copy in a worker."""

local_structure = pytest.mark.local_only(
    "it checks how the local runner fuses or channels stages; the Ray runner runs sinks in "
    "the driver and bounds batches per actor"
)
"""The test checks the local runner's structure (fusion with sinks, channel bounds,
sources running their chain inline)."""

kills_its_process = pytest.mark.local_only(
    "a step kills the process it runs in, which on Ray is a worker, not the driver "
    "(tests/ray kills workers and the driver)"
)
"""The test's step sends SIGKILL to its own process to crash the run: on Ray that process
is a worker whose task Ray runs again, a case tests/ray covers."""

steps_in_step = pytest.mark.local_only(
    "it counts group commits, which gather steps that end together in one process; Ray's "
    "tasks end apart"
)
"""The test checks that concurrent workflows' steps share commits: locally their steps end
in the same loop turn; Ray tasks come back one by one, so fewer commits are shared."""

unpicklable_events = pytest.mark.local_only(
    "its events cannot be pickled, and events cross to Ray's actors pickled"
)
"""The test's events hold something no pickler can ship (a lock): on Ray the run fails,
saying so (tests/ray checks the message)."""

source_order = pytest.mark.local_only(
    "what it asserts depends on the order in which two sources' events meet: the local "
    "runner interleaves them in a fixed order, Ray in the order their batches arrive"
)
"""The test's outcome (a match or an eviction) depends on which of two sources comes
first; riverbed promises order per key within one source, not between sources."""
