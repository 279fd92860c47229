"""Built-in GPU profiles (../shared/REFERENCES.md, "GPUs": vendor datasheets) and their power models.

Power shape: every profile scales the measured H200 curve (../shared/data/gpu_power/h200/README.md) by its board
limit: idle with a context = 122/700 of the limit, unthrottled demand rises 800/700 of the limit per unit of
offered compute load, memory-bound streaming reaches 641/700 of the limit, DVFS exponent 1.9. A profile may
override each figure where a measurement exists.

To add a GPU: append a :class:`GpuProfile` to ``BUILTIN_GPUS`` (or list it under ``gpu_profiles`` in a scenario).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gigafactory_sim.power.models import DvfsPowerModel

__all__ = ["BUILTIN_GPUS", "GpuProfile", "get_gpu"]

# Ratios of the measured H200 (700 W board limit), used to scale profiles without their own measurements.
H200_IDLE_FRACTION = 122.0 / 700.0
H200_SLOPE_FRACTION = 800.0 / 700.0
H200_MEMORY_FULL_FRACTION = 641.0 / 700.0
H200_DVFS_ALPHA = 1.9


class GpuProfile(BaseModel):
    """One GPU type. Powers in W, compute in TFLOP/s (dense bf16), memory in GB, bandwidth in TB/s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    board_limit_w: float = Field(gt=0)
    dense_bf16_tflops: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    hbm_bandwidth_tbs: float = Field(gt=0)
    idle_w: float | None = Field(default=None, gt=0, description="idle with a context open; default scales H200")
    slope_w: float | None = Field(default=None, gt=0, description="W per unit offered load; default scales H200")
    memory_full_w: float | None = Field(default=None, gt=0, description="W at full HBM bandwidth")
    dvfs_alpha: float = Field(default=H200_DVFS_ALPHA, gt=0)
    source: str = ""

    @property
    def power_model(self) -> DvfsPowerModel:
        idle = self.idle_w if self.idle_w is not None else H200_IDLE_FRACTION * self.board_limit_w
        slope = self.slope_w if self.slope_w is not None else H200_SLOPE_FRACTION * self.board_limit_w
        mem_full = (
            self.memory_full_w if self.memory_full_w is not None else H200_MEMORY_FULL_FRACTION * self.board_limit_w
        )
        return DvfsPowerModel(
            idle_w=idle,
            slope_w=slope,
            limit_w=self.board_limit_w,
            alpha=self.dvfs_alpha,
            memory_slope_w=max(mem_full - idle, 0.0),
        )

    def sustained_tflops(self, load: float = 1.0) -> float:
        """Dense bf16 throughput sustained at ``load`` under the board limit (datasheet peak x DVFS speed)."""
        return self.dense_bf16_tflops * load * self.power_model.speed(load)


BUILTIN_GPUS: dict[str, GpuProfile] = {
    p.name: p
    for p in (
        GpuProfile(
            name="A100-80GB",
            board_limit_w=400,
            dense_bf16_tflops=312,
            memory_gb=80,
            hbm_bandwidth_tbs=2.0,
            source="NVIDIA A100 SXM 80GB datasheet",
        ),
        GpuProfile(
            name="H100-SXM",
            board_limit_w=700,
            dense_bf16_tflops=990,
            memory_gb=80,
            hbm_bandwidth_tbs=3.35,
            source="NVIDIA H100 SXM datasheet",
        ),
        GpuProfile(
            name="H200-SXM",
            board_limit_w=700,
            dense_bf16_tflops=990,
            memory_gb=141,
            hbm_bandwidth_tbs=4.8,
            idle_w=122,
            slope_w=800,
            memory_full_w=641,
            source="NVIDIA H200 SXM datasheet; power measured (shared/data/gpu_power/h200)",
        ),
        GpuProfile(
            name="B200",
            board_limit_w=1000,
            dense_bf16_tflops=2250,
            memory_gb=192,
            hbm_bandwidth_tbs=8.0,
            source="NVIDIA B200 / DGX B200 datasheet",
        ),
        GpuProfile(
            name="MI300X",
            board_limit_w=750,
            dense_bf16_tflops=1300,
            memory_gb=192,
            hbm_bandwidth_tbs=5.3,
            source="AMD Instinct MI300X datasheet",
        ),
    )
}


def get_gpu(name: str, extra: dict[str, GpuProfile] | None = None) -> GpuProfile:
    """The profile called ``name`` among the built-ins and ``extra`` (scenario-defined) profiles."""
    if extra and name in extra:
        return extra[name]
    try:
        return BUILTIN_GPUS[name]
    except KeyError:
        known = ", ".join(sorted({*BUILTIN_GPUS, *(extra or {})}))
        raise KeyError(f"unknown GPU {name!r}; known: {known}") from None
