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
