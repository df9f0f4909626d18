"""A queue worker for the claim tests, run as a separate process:

    python -m tests.store.claimer URL WORKER [WORK_SECONDS]

It opens the store, prints ``ready``, waits for a line on stdin (so that all workers start
claiming at once), then claims runs until the queue is empty, ending each SUCCEEDED, and
prints the ids it claimed as one JSON list. WORK_SECONDS (default 0.005) is slept per run,
as work, so that the workers' claims interleave.
"""

from __future__ import annotations

import json
import sys
import time

import riverbed as rb


def main(url: str, worker: str, work_seconds: float) -> None:
    """Claim until the queue is empty; print what was claimed."""
    claimed: list[str] = []
    with rb.open_store(url) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        while (run := store.claim(worker, lease_seconds=60)) is not None:
            claimed.append(run.run_id)
            time.sleep(work_seconds)
            store.transition(run.run_id, rb.RunStatus.SUCCEEDED, lease_until=None)
    print(json.dumps(claimed), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.005)
