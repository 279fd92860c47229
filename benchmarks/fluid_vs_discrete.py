"""Fluid against discrete on real and synthetic request streams (the agreement tables in README.md).

    PYTHONPATH=. python benchmarks/fluid_vs_discrete.py [--chunked] [--step-queue]

The issue's agreement cases (:mod:`gigafactory_sim.inference.agreement`): Llama-3-8B shape on one H200 per
replica, 2 replicas, 10 minutes; each stream scaled to 30, 60 and 80 % of the replicas' SLO capacity. Prints one
row per stream and load: relative error of fluid vs discrete per figure.
"""

from __future__ import annotations

import sys

from gigafactory_sim.inference.agreement import LOADS, STREAMS, TARGETS, reference_service, stream_errors


def main(chunked: bool, step_queue: bool) -> None:
    service = reference_service(chunked)
    print("stream load " + " ".join(TARGETS))
    for name, stream in STREAMS.items():
        sample = stream()
        for load in LOADS:
            err = stream_errors(service, sample, load, step_queue=step_queue)
            print(f"{name} {load:.1f} " + " ".join(f"{100 * err[k]:+.1f}%" for k in TARGETS), flush=True)


if __name__ == "__main__":
    main("--chunked" in sys.argv, "--step-queue" in sys.argv)
