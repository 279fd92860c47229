"""Golden outputs that lock the engine's behaviour: ``python tests/golden/make_golden.py`` rewrites them.

For every shipped scenario at a short horizon (and the Philly replay whole): its ``summary.json`` exactly as the
run directory holds it, and a content hash of its jobs and time-series tables. A change to any of them must be named
in the commit that makes it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's package, whatever is installed
GOLDEN = Path(__file__).resolve().parent
SCENARIOS = ROOT / "scenarios"

# scenario file -> overrides (short horizons keep the suite fast; each still exercises its features)
CASES: dict[str, list[str]] = {
    "base.yaml": ["horizon=3d"],
    "base-de.yaml": ["horizon=3d"],
    "power-capped.yaml": ["horizon=3d"],
    "power-capped-de.yaml": ["horizon=2d"],
    "carbon-aware.yaml": ["horizon=8d"],
    "inference-heavy.yaml": ["horizon=2d"],
    "failures.yaml": ["horizon=4d"],
    "quickstart.yaml": [],
    "philly-replay.yaml": [],
    "benchmark-year.yaml": ["horizon=2d"],
    "eu-federation.yaml": ["horizon=3d"],  # federations: the summary with its sites, the federation's tables
    "federation-4x100k.yaml": ["horizon=2d"],
}


def table_hash(df: pd.DataFrame) -> str:
    """A hash of a table's column names, dtypes and values, independent of the Parquet writer's version and of
    the order of the columns (features add theirs in registry order; readers select columns by name)."""
    h = hashlib.sha256()
    for name in sorted(df.columns):
        col = df[name]
        h.update(f"{name}:{col.dtype};".encode())
        values = col.to_numpy()
        if values.dtype.kind in "biufM":
            h.update(np.ascontiguousarray(values).tobytes())
        else:
            h.update("\x1f".join(map(repr, values.tolist())).encode())
    return h.hexdigest()


def golden_of(name: str) -> dict[str, object]:
    from gigafactory_sim import load_scenario, run
    from gigafactory_sim.report.writer import to_json

    result = run(load_scenario(SCENARIOS / name, CASES[name]))
    return {
        "scenario": name,
        "overrides": CASES[name],
        "jobs_rows": len(result.jobs),
        "jobs_sha256": table_hash(result.jobs),
        "timeseries_rows": len(result.timeseries),
        "timeseries_sha256": table_hash(result.timeseries),
        "summary": json.loads(to_json(result.summary)),
    }


def path_of(name: str) -> Path:
    return GOLDEN / (Path(name).stem + ".json")


def main(names: list[str]) -> None:
    for name in names or list(CASES):
        path_of(name).write_text(json.dumps(golden_of(name), indent=1, sort_keys=False) + "\n")
        print("wrote", path_of(name).name)


if __name__ == "__main__":
    main(sys.argv[1:])
