"""A federation against the sum of its sites run alone, each with the very jobs the federation gave it (not a
unit test).

    python benchmarks/federation_vs_sites.py [SCENARIO] [--horizon 7d] [--repeat 3]

The federation runs once in a fresh process (CPU time of its simulation); it writes, per site, the jobs it
delivered there and when. Each site then runs alone in a fresh process of its own: the same prepared site
(facility, services, failures, grid), its own clock, and as its arrivals the federation's deliveries to it, each
job submitted at the time its dataset arrived. What the federation adds (placement, the network, the shared
clock) is then the ratio's excess over 1. ``--repeat`` alternates the federation and its sites that many times
and prints the median ratio. A job that migrated is replayed at its first site only (the shipped
federation-4x100k does not migrate).

``--one-clock`` splits the excess: the same four sites, each with its deliveries as its own arrivals, run in one
process one after another and then together on one SimPy clock (no placement, no network): the same events and
passes, so their ratio is what interleaving the sites costs by itself.

    python benchmarks/federation_vs_sites.py --one-clock [--repeat 4]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FEDERATION = r"""
import json, sys, time
import numpy as np
import gigafactory_sim as g
from gigafactory_sim.api import build, prepare_any
run = build(prepare_any(g.load_scenario(sys.argv[1], ["horizon=" + sys.argv[2]])))
c = time.process_time()
run.run()
cpu = time.process_time() - c
out = {}
for k, rows in enumerate(run.local_to_global):
    ids = np.asarray(rows, dtype=np.int64)
    out[f"ids{k}"] = ids
    out[f"at{k}"] = run.rec_delivered_s[ids]
np.savez(sys.argv[3], **out)
print(json.dumps({"cpu_s": cpu, "sites": len(run.sites), "jobs": [len(r) for r in run.local_to_global]}))
"""

DELIVERED = r"""
import copy, dataclasses, json, sys, time
import numpy as np
import gigafactory_sim as g
from gigafactory_sim.api import prepare_any
from gigafactory_sim.sim.engine import Simulation
prepared = prepare_any(g.load_scenario(sys.argv[1], ["horizon=" + sys.argv[2]]))
saved = np.load(sys.argv[3])


def delivered(k):
    # site k prepared with the federation's deliveries to it as its own arrivals
    ids, at = saved[f"ids{k}"], saved[f"at{k}"]
    first = ~np.isnan(at)  # (a migrated job's later stays: its first site replays it)
    ids, at = ids[first], at[first]
    src, site = prepared.jobs, prepared.sites[k]
    jobs = copy.copy(site.jobs)  # the site's table, as the federation fills it: row r is the r-th job delivered there
    n, m = len(jobs), len(ids)
    jobs.submit_s = np.full(n, np.inf)  # (rows it never got never arrive)
    jobs.submit_s[:m] = at
    for name in ("gpus", "work_s", "priority", "source_idx", "tenant_idx", "class_idx"):
        column = getattr(jobs, name).copy()
        column[:m] = getattr(src, name)[ids]
        setattr(jobs, name, column)
    return dataclasses.replace(site, jobs=jobs), m
"""

SITE = (
    DELIVERED
    + r"""
prepared_k, m = delivered(int(sys.argv[4]))
sim = Simulation(prepared_k)
c = time.process_time()
sim.run()
cpu = time.process_time() - c
assert sim.n_submitted == m, (sim.n_submitted, m)  # every delivery arrived, nothing else did
print(json.dumps({"cpu_s": cpu}))
"""
)

ONE_CLOCK = (
    DELIVERED
    + r"""
from gigafactory_sim.sim.timer import Environment
sites = [delivered(k)[0] for k in range(len(prepared.sites))]
if sys.argv[4] == "apart":  # one after another, each on its own clock
    cpu = 0.0
    for p in sites:
        sim = Simulation(p)
        c = time.process_time()
        sim.run()
        cpu += time.process_time() - c
else:  # together on one clock, each with its own arrivals (no placement, no network)
    env = Environment()
    sims = [Simulation(p, env=env) for p in sites]
    c = time.process_time()
    for sim in sims:  # (the engine's own arrival chain, as Simulation.run starts it: on a shared clock there is
        env.process(sim._arrivals())  # no public way to, since a federation submits the jobs itself)
        sim.start_processes()
    env.run(until=sims[0].horizon_s)
    for sim in sims:
        sim.finish_run(sim.horizon_s)
    cpu = time.process_time() - c
print(json.dumps({"cpu_s": cpu}))
"""
)


def _child(args: list[str]) -> dict[str, object]:
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def sites_ratio(scenario: Path, horizon: str, repeat: int, verbose: bool = True) -> float:
    """The median over ``repeat`` runs of the federation's simulation CPU time over the sum of its sites'."""
    npz = str(Path(tempfile.mkdtemp(prefix="gfs-fed-")) / "deliveries.npz")
    ratios, fed_s, sites_s = [], [], []
    for _ in range(repeat):
        fed = _child([sys.executable, "-c", FEDERATION, str(scenario), horizon, npz])
        n_sites = int(fed["sites"])  # type: ignore[call-overload]
        alone = [
            float(_child([sys.executable, "-c", SITE, str(scenario), horizon, npz, str(k)])["cpu_s"])  # type: ignore[arg-type]
            for k in range(n_sites)
        ]
        fed_s.append(float(fed["cpu_s"]))  # type: ignore[arg-type]
        sites_s.append(sum(alone))
        ratios.append(fed_s[-1] / sites_s[-1])
        if verbose:
            each = " + ".join(f"{a:.2f}" for a in alone)
            print(f"federation {fed_s[-1]:.2f} s, sites alone {each} = {sum(alone):.2f} s (jobs {fed['jobs']})")
    return statistics.median(ratios)


def one_clock_ratio(scenario: Path, horizon: str, repeat: int) -> float:
    """The median over ``repeat`` alternating pairs of the sites' CPU time together on one clock over their CPU
    time one after another, in one process each, all with the federation's deliveries as their arrivals."""
    npz = str(Path(tempfile.mkdtemp(prefix="gfs-fed-")) / "deliveries.npz")
    _child([sys.executable, "-c", FEDERATION, str(scenario), horizon, npz])
    ratios = []
    for _ in range(repeat):
        apart = float(_child([sys.executable, "-c", ONE_CLOCK, str(scenario), horizon, npz, "apart"])["cpu_s"])  # type: ignore[arg-type]
        together = float(_child([sys.executable, "-c", ONE_CLOCK, str(scenario), horizon, npz, "together"])["cpu_s"])  # type: ignore[arg-type]
        ratios.append(together / apart)
        print(f"one clock {together:.2f} s, one after another {apart:.2f} s: {ratios[-1]:.3f}")
    return statistics.median(ratios)


def main(argv: list[str]) -> None:
    flags = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or not argv[i - 1].startswith("--"))]
    scenario = Path(args[0]) if args else ROOT / "scenarios" / "federation-4x100k.yaml"
    horizon = flags.get("--horizon", "7d")
    repeat = int(flags.get("--repeat", "3"))
    if "--one-clock" in argv:
        ratio = one_clock_ratio(scenario, horizon, repeat)
        print(f"the sites on one clock / one after another (CPU time, {horizon}): median {ratio:.2f}")
        return
    ratio = sites_ratio(scenario, horizon, repeat)
    print(f"federation / the sum of its sites alone (CPU time of the simulations, {horizon}): median {ratio:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
