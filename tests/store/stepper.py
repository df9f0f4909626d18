"""Records workflow steps forever, for the crash test, run as a separate process:

    python -m tests.store.stepper URL RUN_ID

After each step's ``commit_steps`` returns it prints the step's seq: a printed seq is one the store
promised to keep. The test kills this process with SIGKILL mid-stream.
"""

from __future__ import annotations

import itertools
import sys
from datetime import UTC, datetime

import riverbed as rb


def main(url: str, run_id: str) -> None:
    """Record steps 0, 1, 2... until killed."""
    with rb.open_store(url) as store:
        for seq in itertools.count():
            step = rb.StepRecord(run_id, seq, "work", seq.to_bytes(8, "big"), datetime.now(UTC))
            stage_run = rb.StageRun(
                run_id, "work", rb.StageKind.MAP, rb.StageStatus.RUNNING, events_in=seq + 1
            )
            store.commit_steps([rb.StepCommit(run_id, step=step, stage_run=stage_run)])
            print(seq, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
