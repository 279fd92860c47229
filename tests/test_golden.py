"""Golden outputs: every shipped scenario (short horizons; the Philly replay whole) reproduces its committed
summary and table hashes exactly. Regenerate with ``python tests/golden/make_golden.py`` only in a commit that says
which figure changed and why."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
assert _spec is not None and _spec.loader is not None
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.mark.parametrize("name", list(make_golden.CASES))
def test_golden_output_unchanged(name: str) -> None:
    expected = json.loads(make_golden.path_of(name).read_text())
    actual = make_golden.golden_of(name)
    assert actual["summary"] == expected["summary"]
    assert (actual["jobs_rows"], actual["jobs_sha256"]) == (expected["jobs_rows"], expected["jobs_sha256"])
    assert (actual["timeseries_rows"], actual["timeseries_sha256"]) == (
        expected["timeseries_rows"],
        expected["timeseries_sha256"],
    )


def test_golden_hash_sees_a_change() -> None:
    import pandas as pd

    df = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    changed = df.copy()
    changed.loc[1, "a"] = 2.0000000001
    assert make_golden.table_hash(df) == make_golden.table_hash(df.copy())
    assert make_golden.table_hash(df) != make_golden.table_hash(changed)
