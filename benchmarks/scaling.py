"""How the cost of a run grows with the work (jobs) and with the facility (GPUs). Not a unit test.

    python benchmarks/scaling.py            # the README's scaling table (several minutes on 2 cores)
    python benchmarks/scaling.py --quick    # the small rows only
    python benchmarks/scaling.py --gpus     # the GPUs column only

Each row is one fresh process: a 30-day synthetic facility of H200 nodes at about 80 % offered load (1-8 GPU jobs,
log-normal run times with a 1 h median), EASY backfilling, power accounting on, no report. The jobs column varies
the arrival rate at 10,240 GPUs; the GPUs column varies the facility at about 1,000,000 jobs (run times scaled so
the offered load stays the same). Printed: wall time (load, build, simulate, collect), simulate time, peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import yaml
from gigafactory_sim.config.loader import parse_scenario_text
import gigafactory_sim as g
gpus, jobs = int(sys.argv[1]), int(sys.argv[2])
horizon_s = 30 * 86400
rate_per_hour = jobs / (horizon_s / 3600)
mean_gpus = (1 * 0.4 + 2 * 0.15 + 4 * 0.15 + 8 * 0.3)
# offered load 0.8: rate x mean gpus x mean run time = 0.8 x gpus; lognormal mean = median x exp(sigma^2 / 2)
mean_s = 0.8 * gpus / (rate_per_hour / 3600 * mean_gpus)
median_s = mean_s / 2.718281828 ** (1.0 ** 2 / 2)
doc = {
    "name": f"scale-{gpus}-{jobs}", "seed": 1, "start": "2024-06-03T00:00:00Z", "horizon": "30d",
    "facility": {"clusters": [{"name": "h200", "gpu": "H200-SXM", "nodes": gpus // 8}]},
    "workload": {"training": [{"kind": "synthetic", "name": "jobs",
        "arrivals": {"kind": "poisson", "rate_per_hour": rate_per_hour},
        "classes": [{"name": "c", "share": 1.0,
            "sizes": {"kind": "choice", "gpus": [1, 2, 4, 8], "weights": [0.4, 0.15, 0.15, 0.3]},
            "duration": {"kind": "lognormal", "median": f"{median_s}s", "sigma": 1.0, "max": "30d"}}]}]},
    "scheduler": {"kind": "easy_backfill", "lookahead": 100},
    "report": {"interval": "1h", "plots": False},
    "limits": {"max_memory": "20GB", "max_events": 1e9},
}
t0 = time.perf_counter()
result = g.run(parse_scenario_text(yaml.safe_dump(doc), "scale.yaml"))
wall = time.perf_counter() - t0
print(json.dumps({"gpus": gpus, "jobs": result.summary["jobs"]["submitted"], "wall_s": wall,
    "simulate_s": result.meta["performance"]["simulate_s"],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "allocated": result.summary["utilisation"]["allocated_fraction"]}))
"""

JOBS_ROWS = [(10_240, n) for n in (10_000, 100_000, 1_000_000, 10_000_000)]
GPU_ROWS = [(g, 1_000_000) for g in (1_024, 10_240, 100_352, 1_000_448)]


def main(quick: bool) -> None:
    rows = [r for r in JOBS_ROWS + GPU_ROWS if not quick or r[1] <= 100_000]
    if "--gpus" in sys.argv[1:]:
        rows = GPU_ROWS
    print("| GPUs | jobs | wall s | simulate s | µs per job (simulate) | peak RSS MB | allocated |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for gpus, jobs in dict.fromkeys(rows):
        out = subprocess.run([sys.executable, "-c", CHILD, str(gpus), str(jobs)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {gpus:,} | {jobs:,} | failed: {out.stderr.strip().splitlines()[-1]} |||||")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"| {r['gpus']:,} | {r['jobs']:,} | {r['wall_s']:.1f} | {r['simulate_s']:.1f} | "
            f"{r['simulate_s'] / r['jobs'] * 1e6:.0f} | {r['peak_rss_mb']:,.0f} | {r['allocated']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main("--quick" in sys.argv[1:])
