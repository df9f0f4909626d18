"""The per-stage settings are typed: a type checker catches a misspelt or mistyped
setting in the user's code before it runs (and the run-time check still names it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import riverbed as rb
from riverbed._model.settings import SETTINGS, StageOptions

USER_CODE = """
import riverbed as rb

flow = rb.Flow("typed")
numbers = flow.source([1, 2, 3])
numbers.map(str, retry=rb.Retry(attempts=3), timeout=2.0)      # fine
numbers.map(str, on_eror=rb.OnError.SKIP)                       # misspelt
numbers.filter(bool, timeout="soon")                            # wrong type
"""


def test_the_settings_are_the_typed_options():
    assert set(StageOptions.__annotations__) == SETTINGS


def test_a_type_checker_catches_a_wrong_setting(tmp_path: Path):
    user = tmp_path / "user_flow.py"
    user.write_text(USER_CODE)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--strict", str(user)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = checked.stdout
    assert 'Unexpected keyword argument "on_eror"' in report, report
    assert 'Argument "timeout" to "filter" of "Stream" has incompatible type "str"' in report
    assert report.count("error:") == 2, report  # and nothing on the line that is right


def test_at_run_time_a_wrong_setting_is_named():
    flow = rb.Flow("untyped")
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['on_eror'\]"):
        flow.source([1]).map(str, on_eror=rb.OnError.SKIP)  # type: ignore[call-arg]
