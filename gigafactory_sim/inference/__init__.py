"""Inference services: schema, replica roofline, fluid and discrete models, traces (README.md ("Inference services")).

The engine side (one SimPy process per service, GPU allocation, preemption) is in
:mod:`gigafactory_sim.inference.runtime` and :mod:`gigafactory_sim.inference.service`.
"""

from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.inference.perf import ReplicaPerf, TokenMix, capacity, operating_point

__all__ = ["InferenceService", "ReplicaPerf", "TokenMix", "capacity", "operating_point"]
