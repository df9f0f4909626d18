"""The whole suite records its runs in a store of its own, never in ./.riverbed."""

from __future__ import annotations

import os
import tempfile

if "RIVERBED_STORE" not in os.environ:
    _STORE_DIR = tempfile.mkdtemp(prefix="riverbed-tests-")
    os.environ["RIVERBED_STORE"] = f"sqlite:///{_STORE_DIR}/runs.db"
