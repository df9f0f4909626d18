"""A FlowForge job's state: its status, routine states and history (``JobState``,
``ExecutionRecord``), saved and loaded as JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOB_STATUSES = ("pending", "running", "paused", "completed", "failed", "cancelled")
"""A job's statuses, as the seed names them."""


class ExecutionRecord:
    """One entry of a job's history: a routine emitted an event (or started)."""

    def __init__(
        self, routine_id: str, event_name: str, data: dict[str, Any], timestamp: datetime
    ) -> None:
        self.routine_id = routine_id
        self.event_name = event_name
        self.data = data
        self.timestamp = timestamp

    def serialize(self) -> dict[str, Any]:
        """The record as JSON data (values that are not JSON as their repr)."""
        return {
            "routine_id": self.routine_id,
            "event_name": self.event_name,
            "data": json.loads(json.dumps(self.data, default=repr)),
            "timestamp": self.timestamp.isoformat(),
        }

    def __repr__(self) -> str:
        return f"ExecutionRecord[{self.routine_id}.{self.event_name}@{self.timestamp}]"


class JobState:
    """What one execution of a flow did: its status, each routine's state and the
    history of what was emitted; ``job_id`` is the riverbed run's id."""

    def __init__(self, flow_id: str = "", job_id: str | None = None) -> None:
        self.flow_id = flow_id
        self.job_id = job_id or uuid.uuid4().hex[:16]
        self.status = "pending"
        self.current_routine_id: str | None = None
        self.routine_states: dict[str, dict[str, Any]] = {}
        self.execution_history: list[ExecutionRecord] = []
        self.error: str | None = None
        self.created_at = datetime.now(UTC)
        self.updated_at = self.created_at

    def __repr__(self) -> str:
        return f"JobState[{self.job_id}:{self.status}]"

    def get_routine_state(self, routine_id: str) -> dict[str, Any] | None:
        """The state of routine ``routine_id``, or None if it did not run."""
        return self.routine_states.get(routine_id)

    def get_execution_history(self, routine_id: str | None = None) -> list[ExecutionRecord]:
        """The history, oldest first, of one routine if given."""
        records = [r for r in self.execution_history if routine_id in (None, r.routine_id)]
        return sorted(records, key=lambda record: record.timestamp)

    def serialize(self) -> dict[str, Any]:
        """The job state as JSON data."""
        return {
            "flow_id": self.flow_id,
            "job_id": self.job_id,
            "status": self.status,
            "current_routine_id": self.current_routine_id,
            "routine_states": json.loads(json.dumps(self.routine_states, default=repr)),
            "execution_history": [record.serialize() for record in self.execution_history],
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def deserialize(cls, data: Mapping[str, Any]) -> JobState:
        """A job state from ``serialize``'s data."""
        if data.get("status") not in JOB_STATUSES:
            raise ValueError(f"job status {data.get('status')!r} is not one of {JOB_STATUSES}")
        state = cls(data["flow_id"], data["job_id"])
        state.status = data["status"]
        state.current_routine_id = data.get("current_routine_id")
        state.routine_states = dict(data.get("routine_states", {}))
        state.execution_history = [
            ExecutionRecord(
                r["routine_id"], r["event_name"], r["data"], datetime.fromisoformat(r["timestamp"])
            )
            for r in data.get("execution_history", [])
        ]
        state.error = data.get("error")
        state.created_at = datetime.fromisoformat(data["created_at"])
        state.updated_at = datetime.fromisoformat(data["updated_at"])
        return state

    def save(self, filepath: str | Path) -> None:
        """Write the job state to ``filepath`` as JSON (its directory made if needed)."""
        path = Path(filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.serialize(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, filepath: str | Path) -> JobState:
        """Read a job state written by ``save``."""
        path = Path(filepath)
        if not path.exists():
            raise FileNotFoundError(f"JobState file not found: {filepath}")
        return cls.deserialize(json.loads(path.read_text()))
