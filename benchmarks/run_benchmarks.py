"""Benchmark the simulator core (not a unit test): wall time, peak RSS, events/s and jobs/s.

    python benchmarks/run_benchmarks.py                  # benchmark-year and philly-replay
    python benchmarks/run_benchmarks.py scenarios/base.yaml

Each scenario runs in a fresh process so that its peak RSS is its own. Targets on a 2-core machine:
benchmark-year <= 120 s and <= 2 GB; philly-replay <= 5 s. Record the figures in README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "scenarios" / "benchmark-year.yaml", ROOT / "scenarios" / "philly-replay.yaml"]

CHILD = r"""
import json, resource, sys, time
import gigafactory_sim as g
t0 = time.perf_counter()
scenario = g.load_scenario(sys.argv[1])
result = g.run(scenario)
wall = time.perf_counter() - t0
perf = result.meta["performance"]
print(json.dumps({
    "scenario": scenario.name,
    "gpus": result.summary["gpus_total"],
    "horizon_d": scenario.horizon_s / 86400,
    "jobs": result.summary["jobs"]["submitted"],
    "wall_s": wall,
    "simulate_s": perf["simulate_s"],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "events": perf["events"],
    "events_per_s": perf["events"] / perf["simulate_s"],
    "jobs_per_s": result.summary["jobs"]["submitted"] / perf["simulate_s"],
    "allocated_fraction": result.summary["utilisation"]["allocated_fraction"],
}))
"""


def main(paths: list[Path]) -> None:
    rows = []
    for path in paths:
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = "| scenario | GPUs | days | jobs | wall s | peak RSS MB | events/s | jobs/s |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['gpus']:,} | {r['horizon_d']:.0f} | {r['jobs']:,} | {r['wall_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {r['events_per_s']:,.0f} | {r['jobs_per_s']:,.0f} |"
        )


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]] or DEFAULT)
