"""The scenario file's schema (YAML -> pydantic). Every field is documented in the README's scenario tour."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, PrivateAttr, field_validator, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.config.limits import LimitsConfig
from gigafactory_sim.eed.config import EedIdentity, HeatReuseConfig
from gigafactory_sim.eed.cooling import CoolingConfig
from gigafactory_sim.energy.config import EnergyConfig
from gigafactory_sim.energy.pue import PueConfig
from gigafactory_sim.gpus.catalogue import GpuProfile
from gigafactory_sim.grid.config import GridConfig
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.power.models import (
    GpuPowerModel,
    InterpolatedPowerModel,
    LinearPowerModel,
)
from gigafactory_sim.reliability.config import CheckpointConfig, FailureConfig
from gigafactory_sim.scheduling import EasyBackfillConfig, SchedulerConfig
from gigafactory_sim.stats.config import StatisticsConfig
from gigafactory_sim.units import Duration
from gigafactory_sim.workload.synthetic import SyntheticTraining
from gigafactory_sim.workload.traces import TraceTraining

__all__ = [
    "Cluster",
    "Facility",
    "NodePower",
    "PowerConfig",
    "ReportConfig",
    "Scenario",
    "ScenarioBase",
    "Workload",
]


class NodePower(StrictModel):
    """Non-GPU power of one node (CPUs, memory, NICs, fans): ``idle_w`` with no GPU allocated, ``busy_w`` with all
    allocated, linear in between. Default from DGX H100: 8.4 kW measured in training (Latif et al. 2025) minus
    8 GPUs at ~0.7 kW leaves ~2.8 kW; we take 2.5 kW busy, 1.0 kW idle."""

    idle_w: float = Field(default=1000.0, ge=0, le=1e6)
    busy_w: float = Field(default=2500.0, ge=0, le=1e6)


class GpuDefaultPower(StrictModel):
    """``kind: gpu``: the GPU profile's DVFS model (scaled from the measured H200 curve)."""

    kind: Literal["gpu"] = "gpu"

    def build(self, gpu: GpuProfile) -> GpuPowerModel:
        return gpu.power_model


class LinearPower(StrictModel):
    """``kind: linear``: ``idle_w + (max_w - idle_w) * load`` (OpenDC's linear model)."""

    kind: Literal["linear"] = "linear"
    idle_w: float = Field(ge=0)
    max_w: float = Field(gt=0)

    def build(self, gpu: GpuProfile) -> GpuPowerModel:
        return LinearPowerModel(idle_w=self.idle_w, max_w=self.max_w, limit_w=gpu.board_limit_w)


class InterpolatedPower(StrictModel):
    """``kind: interpolated``: piecewise linear through measured ``[load, power_w]`` points."""

    kind: Literal["interpolated"] = "interpolated"
    points: list[tuple[float, float]] = Field(min_length=2)

    def build(self, gpu: GpuProfile) -> GpuPowerModel:
        pts = sorted(self.points)
        return InterpolatedPowerModel(
            loads=tuple(p[0] for p in pts), powers_w=tuple(p[1] for p in pts), limit_w=gpu.board_limit_w
        )


PowerModelConfig = Annotated[GpuDefaultPower | LinearPower | InterpolatedPower, Field(discriminator="kind")]


class Cluster(StrictModel):
    """``nodes`` x ``gpus_per_node`` GPUs of one type."""

    name: str = Field(min_length=1)
    gpu: str
    nodes: int = Field(gt=0, le=1_000_000, description="at most a million (64 million GPUs)")
    gpus_per_node: int = Field(default=8, gt=0, le=64)
    node_power: NodePower = Field(default_factory=NodePower)
    power_model: PowerModelConfig = Field(default_factory=GpuDefaultPower)
    failures: FailureConfig | None = Field(default=None, description="overrides facility.failures here")

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


class Facility(StrictModel):
    name: str = "facility"
    country: str = Field(default="FR", description="grid zone (e.g. FR, DE)")
    pue: PueConfig = Field(
        default=1.2,
        description="facility power / IT power: a number or a model "
        "({kind: temperature, ...}; see the README's energy section)",
    )
    clusters: list[Cluster] = Field(min_length=1)
    failures: FailureConfig | None = Field(default=None, description="failures of clusters without their own")

    def failures_of(self, cluster: Cluster) -> FailureConfig | None:
        """The failure model of ``cluster``: its own, else the facility's default."""
        return cluster.failures if cluster.failures is not None else self.failures

    @model_validator(mode="after")
    def _unique_names(self) -> Facility:
        names = [c.name for c in self.clusters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"cluster names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def gpus(self) -> int:
        return sum(c.gpus for c in self.clusters)


TrainingSource = Annotated[SyntheticTraining | TraceTraining, Field(discriminator="kind")]


class Workload(StrictModel):
    reference_gpu: str | None = Field(
        default=None,
        description="GPU on which job work is measured; None: each cluster's own GPU (no speed scaling)",
    )
    training: list[TrainingSource] = Field(default_factory=list)
    inference: list[InferenceService] = Field(
        default_factory=list, description="served models (see the README's inference section)"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Workload:
        names = [s.name for s in self.training]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"training source names must be unique; repeated: {', '.join(dupes)}")
        return self


class PowerConfig(StrictModel):
    training_gpu_load: float = Field(
        default=0.65,
        gt=0,
        le=1,
        description="offered compute load of a GPU running training; 0.65 puts an H100/H200 at ~640 W, "
        "OLMo's '>600 W (>85 % of TDP) while training'",
    )
    unallocated_gpu_state: Literal["parked", "context"] = Field(
        default="parked",
        description="parked: no process, deep idle (78 W on the H200 = 0.11 of its limit); context: ~122 W",
    )


class ReportConfig(StrictModel):
    interval: Duration = Field(default=900.0, description="time-series row length")
    plots: bool = True

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("interval must be positive")
        return v


class ScenarioBase(StrictModel):
    """What every scenario file has, one facility or a federation of sites: identity, time, seed, scheduling,
    training power, checkpoints, reports, statistics and limits; and where the file came from."""

    name: str | None = None
    description: str = ""
    seed: int = Field(default=0, ge=0)
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    horizon: Duration
    gpu_profiles: list[GpuProfile] = Field(default_factory=list)
    scheduler: SchedulerConfig = Field(default_factory=EasyBackfillConfig)
    power: PowerConfig = Field(default_factory=PowerConfig)
    checkpointing: CheckpointConfig | None = None
    report: ReportConfig = Field(default_factory=ReportConfig)
    statistics: StatisticsConfig | None = Field(
        default=None, description="steady-state figures after a warm-up, with batch-means confidence intervals"
    )
    limits: LimitsConfig | None = Field(default=None, description="the most a run may cost (memory, events)")
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source_file: str = PrivateAttr(default="<scenario>")
    _field_lines: dict[str, int] = PrivateAttr(default_factory=dict)  # dotted path -> line in the file
    _override_paths: tuple[str, ...] = PrivateAttr(default=())  # fields set by --set

    @property
    def base_dir(self) -> Path:
        """Folder that relative data paths in the scenario are resolved against."""
        return self._base_dir

    @property
    def source_file(self) -> str:
        return self._source_file

    @property
    def field_lines(self) -> dict[str, int]:
        """Dotted field path -> its line in the scenario file (for messages about problems found later)."""
        return self._field_lines

    @property
    def override_paths(self) -> tuple[str, ...]:
        """Fields set by ``--set`` overrides."""
        return self._override_paths

    def locate(
        self,
        source_file: str,
        base_dir: Path,
        field_lines: dict[str, int] | None = None,
        override_paths: tuple[str, ...] = (),
    ) -> Self:
        """Record where the scenario came from (the loader calls it); returns ``self``."""
        self._source_file = source_file
        self._base_dir = base_dir
        self._field_lines = dict(field_lines or {})
        self._override_paths = override_paths
        return self

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("horizon")
    @classmethod
    def _positive_horizon(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("horizon must be positive")
        return v

    @model_validator(mode="after")
    def _warmup_inside_horizon(self) -> Self:
        warmup = self.statistics.warmup if self.statistics is not None else "auto"
        if warmup != "auto" and float(warmup) >= float(self.horizon):
            raise ValueError(
                f"statistics.warmup ({float(warmup):g} s) must be shorter than the horizon ({float(self.horizon):g} s)"
            )
        return self

    @property
    def horizon_s(self) -> float:
        return float(self.horizon)

    def gpu_catalogue(self) -> dict[str, GpuProfile]:
        from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS

        return {**BUILTIN_GPUS, **{p.name: p for p in self.gpu_profiles}}


class Scenario(ScenarioBase):
    """A whole scenario of one facility: the facility, its workload, its grid and energy policies."""

    facility: Facility
    workload: Workload = Field(default_factory=Workload)
    grid: GridConfig | None = Field(default=None, description="the site's grid zone and time series")
    energy: EnergyConfig | None = Field(default=None, description="power cap, budgets and power policies")
    cooling: CoolingConfig | None = Field(
        default=None, description="how heat is rejected: water per kWh and the PUE curve it implies (README, EED)"
    )
    heat_reuse: HeatReuseConfig | None = Field(default=None, description="waste heat delivered to a heat network")
    eed: EedIdentity | None = Field(default=None, description="identity fields of the EU data-centre report")
    initial_state: Literal["empty", "steady"] = Field(
        default="empty",
        description="empty: the facility starts idle; steady: pre-filled with running jobs drawn "
        "from the workload (README, 'Steady state and confidence')",
    )
