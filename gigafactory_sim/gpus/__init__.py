"""The GPU catalogue: built-in profiles from vendor datasheets, and the power model each implies."""

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS, GpuProfile, get_gpu

__all__ = ["BUILTIN_GPUS", "GpuProfile", "get_gpu"]
