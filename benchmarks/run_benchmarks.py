"""Benchmark the simulator core (not a unit test): wall time, peak RSS, events/s and jobs/s; and the ratios.

    python benchmarks/run_benchmarks.py                  # benchmark-year and philly-replay
    python benchmarks/run_benchmarks.py scenarios/base.yaml
    python benchmarks/run_benchmarks.py --ratios [--repeat 5] [--floor PATH --philly-csv PATH]

Each scenario runs in a fresh process so that its peak RSS is its own. ``--ratios`` runs each pair of the
README's performance targets alternately, ``--repeat`` times, and prints the median of the pairwise ratios:
Philly (whole process and event loop) against the bare SimPy FIFO floor (``../shared/bench/floor_simpy_fifo.py``
over the raw Philly CSV, when present: the floor lives outside the repository), power-capped and carbon-aware
against base (the CPU time of the simulation, 30 days as shipped), and the four-site federation against the sum
of its sites run alone, each with the jobs the federation delivered to it (``federation_vs_sites.py``; CPU time of
the simulations, 7 days). Absolute times drift on a shared machine;
ratios measured side by side do not. Record the figures in README.md.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from federation_vs_sites import sites_ratio  # (a script beside this one, not a package)

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


SIMULATE = r"""
import json, sys, time
t0 = time.perf_counter()
import gigafactory_sim as g
from gigafactory_sim.api import build, prepare_any
sim = build(prepare_any(g.load_scenario(sys.argv[1], sys.argv[2:])))
t1, c1 = time.perf_counter(), time.process_time()
sim.run()
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"simulate_s": t2 - t1, "simulate_cpu_s": c2 - c1, "wall_s": time.perf_counter() - t0}))
"""


def _child(args: list[str]) -> dict[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    if args[1:3] == ["-m", "gigafactory_sim"]:  # the command line: only its wall time
        return {"simulate_s": wall, "wall_s": wall}
    if "sim_wall_s=" in out:  # the floor's own figures
        loop = float(out.split("sim_wall_s=")[1].split()[0])
        return {"simulate_s": loop, "wall_s": wall}
    row = json.loads(out.strip().splitlines()[-1])
    return {"simulate_s": float(row["simulate_s"]), "simulate_cpu_s": float(row["simulate_cpu_s"]), "wall_s": wall}


def _sim(path: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-c", SIMULATE, str(path), *overrides]


def ratios(repeat: int, floor: Path, philly_csv: Path) -> None:
    """Median ratios of the README's performance targets, each pair run alternately ``repeat`` times."""
    scen = ROOT / "scenarios"
    pairs: list[tuple[str, list[str], list[str], str]] = []
    if floor.is_file() and philly_csv.is_file():
        out = Path(tempfile.mkdtemp(prefix="gfs-bench-")) / "philly"
        cli = [sys.executable, "-m", "gigafactory_sim", "run", str(scen / "philly-replay.yaml"), "--quiet"]
        cli += ["--set", "report.plots=false", "--overwrite", "--out", str(out)]
        floor_cmd = [sys.executable, str(floor), str(philly_csv), "0", "2048"]
        pairs += [
            ("`run philly-replay.yaml` (plots off) / the floor, whole processes", cli, floor_cmd, "wall_s"),
            ("Philly event loop / the floor's loop", _sim(scen / "philly-replay.yaml"), floor_cmd, "simulate_s"),
        ]
    else:
        print(f"(no floor: {floor} or {philly_csv} missing; the Philly ratios are skipped)")
    base = _sim(scen / "base.yaml")
    pairs += [
        # the scenarios as shipped (30 days): the cap binds far more often over the month than in its first days
        ("power-capped / base, simulation CPU time, 30 d", _sim(scen / "power-capped.yaml"), base, "simulate_cpu_s"),
        ("carbon-aware / base, simulation CPU time, 30 d", _sim(scen / "carbon-aware.yaml"), base, "simulate_cpu_s"),
    ]
    print("| comparison | median ratio | pairs |")
    print("|---|---:|---:|")
    for name, a, b, key in pairs:
        values = [_child(a)[key] / _child(b)[key] for _ in range(repeat)]
        print(f"| {name} | {statistics.median(values):.2f} | {len(values)} |")
    # each site alone with the very jobs the federation delivered to it (benchmarks/federation_vs_sites.py)
    fed = sites_ratio(scen / "federation-4x100k.yaml", "7d", repeat, verbose=False)
    print(
        f"| federation-4x100k / the sum of its four sites run alone, simulation CPU time, 7 d | {fed:.2f} | {repeat} |"
    )


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
    args = sys.argv[1:]
    if "--ratios" in args:
        flags = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--") and a != "--ratios"}
        ratios(
            int(flags.get("--repeat", "5")),
            Path(flags.get("--floor", ROOT.parent / "shared" / "bench" / "floor_simpy_fifo.py")),
            Path(flags.get("--philly-csv", ROOT.parent / "shared" / "data" / "traces" / "philly" / "philly.csv")),
        )
    else:
        main([Path(p) for p in args] or DEFAULT)
