"""Scenario schema of inference services (``workload.inference``: a list of :class:`InferenceService`).

Defaults of the replica model rest on measured or published figures (../shared/REFERENCES.md and
../shared/data/gpu_power/h200/README.md):

- ``prefill_efficiency = 0.6``: a Llama-3-8B-shaped prefill on one H200 ran 38.9-39.7k tokens/s at batch
32-128,
  i.e. 2 x 8.03e9 FLOP x 39.7k = 0.64 PFLOP/s, ~0.6 of the 990 TFLOP/s datasheet (the GEMM-only sustained
  figure is
  668 TFLOP/s = 0.67; attention and norms take the rest). The power limit's throttling is inside this figure.
- ``memory_efficiency = 4.27 / 4.8``: measured HBM copy bandwidth over the datasheet's.
- ``decode_efficiency = 0.5`` (compute-bound decode, assumed below prefill's 0.6: skinny GEMMs, attention
  over the KV cache, sampling and tensor-parallel all-reduces each step). Not measured; the MLPerf v4.1 8x
  H200 Llama-2-70B server figure
  (29.2k tokens/s) is the check, see ``tests/test_inference_perf.py`` and README.md ("Inference services").
- FP8 weights (``bytes_per_param: 1``) run at twice the bf16 datasheet FLOP/s (Hopper/Blackwell tensor cores).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.gpus.catalogue import GpuProfile
from gigafactory_sim.inference.autoscaler_config import Autoscaler
from gigafactory_sim.inference.demand import DemandProfile, TraceDemand
from gigafactory_sim.inference.disagg_config import Disaggregation
from gigafactory_sim.inference.moe import split_experts
from gigafactory_sim.inference.perf import ReplicaPerf, SloLimits
from gigafactory_sim.inference.tokens import TokenDistribution
from gigafactory_sim.units import Duration

__all__ = [
    "Autoscaler",
    "Disaggregation",
    "FluidOptions",
    "InferenceFirst",
    "InferenceService",
    "ModelSpec",
    "PrefixCache",
    "ReplicaModel",
    "Scheduling",
    "SharingPolicy",
    "Slo",
    "StaticPartition",
]


class ModelSpec(StrictModel):
    """The served model. KV-cache bytes per token either given, or derived from the attention shape as
    ``2 (K and V) x layers x kv_heads x head_dim x kv_bytes_per_value``."""

    name: str = ""
    params_b: float = Field(gt=0, description="parameters, billions")
    bytes_per_param: float = Field(default=2.0, gt=0, description="2 = bf16, 1 = fp8")
    compute_dtype: Literal["bf16", "fp8"] | None = Field(
        default=None, description="tensor-core precision; default fp8 if bytes_per_param <= 1 else bf16"
    )
    kv_bytes_per_token: float | None = Field(default=None, gt=0)
    layers: int | None = Field(default=None, gt=0)
    kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    kv_bytes_per_value: float = Field(default=2.0, gt=0)
    active_params_b: float | None = Field(default=None, gt=0, description="mixture of experts: per token, billions")
    experts: int | None = Field(default=None, gt=0, description="mixture of experts: routed experts per layer")
    experts_per_token: int | None = Field(default=None, gt=0, description="mixture of experts: top-k")

    @model_validator(mode="after")
    def _kv(self) -> ModelSpec:
        if self.kv_bytes_per_token is None and None in (self.layers, self.kv_heads, self.head_dim):
            raise ValueError("give kv_bytes_per_token, or layers, kv_heads and head_dim to derive it")
        moe = (self.active_params_b, self.experts, self.experts_per_token)
        if any(x is not None for x in moe) and None in moe:
            raise ValueError("a mixture of experts needs active_params_b, experts and experts_per_token")
        if self.active_params_b is not None and self.active_params_b > self.params_b:
            raise ValueError(f"active_params_b {self.active_params_b:g} is above params_b {self.params_b:g}")
        if self.experts is not None and self.experts_per_token is not None and self.experts_per_token > self.experts:
            raise ValueError(f"experts_per_token {self.experts_per_token} is above experts {self.experts}")
        return self

    @property
    def params(self) -> float:
        return self.params_b * 1e9

    @property
    def weight_bytes(self) -> float:
        return self.params * self.bytes_per_param

    @property
    def kv_bytes(self) -> float:
        if self.kv_bytes_per_token is not None:
            return self.kv_bytes_per_token
        assert self.layers and self.kv_heads and self.head_dim
        return 2.0 * self.layers * self.kv_heads * self.head_dim * self.kv_bytes_per_value

    @property
    def flops_multiplier(self) -> float:
        dtype = self.compute_dtype or ("fp8" if self.bytes_per_param <= 1.0 else "bf16")
        return 2.0 if dtype == "fp8" else 1.0


class ReplicaModel(StrictModel):
    """Efficiencies of the replica roofline (see the module docstring for their sources)."""

    prefill_efficiency: float = Field(default=0.6, gt=0, le=1)
    decode_efficiency: float = Field(default=0.5, gt=0, le=1)
    memory_efficiency: float = Field(default=4.27 / 4.8, gt=0, le=1)
    memory_utilisation: float = Field(default=0.9, gt=0, le=1, description="share of HBM for weights + KV cache")
    step_overhead: Duration = Field(default=0.0005, description="fixed time per step (scheduling, launches)")
    moe_efficiency: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="mixture of experts: share of the dense prefill/decode efficiencies its grouped expert GEMMs, "
        "routing and all-to-all reach (calibrated on TensorRT-LLM's Qwen3-235B-A22B 8x H200 figures)",
    )


class Scheduling(StrictModel):
    """How a replica's steps are filled (``scheduling`` of a service).

    Default (``chunked_prefill: false``): prompts admitted at a step boundary are prefilled whole in the next
    step, which stalls every decode behind them. ``chunked_prefill: true`` (vLLM's scheduler, Sarathi-Serve,
    Agrawal et al., OSDI 2024): a step carries at most ``max_num_batched_tokens`` tokens; decodes come first
    (one token each), prefill chunks of the oldest prompts fill the rest, and the step is one fused forward
    pass (weights streamed once for both). 8192 tokens: vLLM's recommended budget for throughput (its docs:
    "Optimization and Tuning"; FastDeploy recommends > 8096).
    """

    chunked_prefill: bool = False
    max_num_batched_tokens: int = Field(default=8192, gt=0, description="tokens per step, decodes included")

    @property
    def prefill_budget_tokens(self) -> float:
        """Tokens per step, or ``inf`` without chunked prefill."""
        return float(self.max_num_batched_tokens) if self.chunked_prefill else float("inf")


class FluidOptions(StrictModel):
    """Options of the fluid fidelity (``fluid`` of a service). ``step_queue: true`` turns on the burst-aware
    latency and power of :mod:`gigafactory_sim.inference.bursts`: TTFT from the step-length queue of
    prefill-first steps, and, for trace demand, the control segment's queue, power and step time also taken on a
    grid of ``resolution`` cells of the trace's own counts. On by default: the fluid is the default fidelity at
    facility scale, and the plain mean field is off several-fold on TTFT under bursts and long prompts
    (README.md, "Fluid under bursts and long prompts"); ``step_queue: false`` gives the plain mean field."""

    step_queue: bool = True
    resolution: Duration = Field(default=0.1, description="cell of the sub-segment grid (trace demand)")

    @model_validator(mode="after")
    def _positive(self) -> FluidOptions:
        if self.resolution <= 0:
            raise ValueError("resolution must be positive")
        return self


class PrefixCache(StrictModel):
    """Prefix caching: either a fixed ``hit_rate`` of every prompt's tokens is cached and not prefilled
    (:mod:`gigafactory_sim.inference.prefix`), or, with ``from_trace: true``, each replica keeps an LRU cache of
    the trace's KV blocks (``hash_ids``, one per ``block_size`` tokens) and a request's hit is its longest cached
    prefix (:mod:`gigafactory_sim.inference.prefix_blocks`). The cache keeps ``cache_share`` of the KV space
    (assumed 0.1). Which combinations are allowed is checked by
    :func:`~gigafactory_sim.inference.prefix_blocks.prefix_cache_problems` (each names its field)."""

    hit_rate: float | None = Field(default=None, ge=0, le=1, description="share of prompt tokens found in the cache")
    from_trace: bool = Field(default=False, description="hit per request from the trace's block hashes (LRU cache)")
    block_size: int = Field(default=512, gt=0, description="tokens per block hash of the trace (Mooncake: 512)")
    cache_share: float = Field(default=0.1, ge=0, lt=1, description="share of the KV space the cache keeps")

    @property
    def fixed_hit_rate(self) -> float:
        """The configured hit rate (0 with ``from_trace``: the hit is measured)."""
        return self.hit_rate if self.hit_rate is not None else 0.0


class Slo(StrictModel):
    """Latency objectives; each optional. ``quantile`` of requests must meet them (0.99: the p99
    objective)."""

    ttft: Duration | None = Field(default=None, description="time to first token")
    tpot: Duration | None = Field(default=None, description="time per output token")
    e2e: Duration | None = Field(default=None, description="end-to-end latency")
    quantile: float = Field(default=0.99, ge=0.5, lt=1)

    def limits(self) -> SloLimits:
        inf = float("inf")
        return SloLimits(
            ttft_s=self.ttft if self.ttft is not None else inf,
            tpot_s=self.tpot if self.tpot is not None else inf,
            e2e_s=self.e2e if self.e2e is not None else inf,
            quantile=self.quantile,
        )


class StaticPartition(StrictModel):
    """Nodes reserved for this service per cluster (``{cluster: nodes}``): training never uses them and the
    service never uses anything else. Reserved nodes without a replica count as idle."""

    kind: Literal["static_partition"] = "static_partition"
    nodes: dict[str, int] = Field(min_length=1)


class InferenceFirst(StrictModel):
    """Replicas take free GPUs; when none are free and ``preempt``, the autoscaler preempts running training
    jobs of lower priority than the service (cheapest lost work first); they requeue and lose their
    progress."""

    kind: Literal["inference_first"] = "inference_first"
    preempt: bool = True


SharingPolicy = Annotated[StaticPartition | InferenceFirst, Field(discriminator="kind")]


class InferenceService(StrictModel):
    """One model served to users: its replicas, demand, token lengths, objectives, autoscaler and sharing."""

    name: str = Field(min_length=1)
    model: ModelSpec
    gpus_per_replica: int = Field(default=1, gt=0)
    clusters: list[str] | None = Field(default=None, description="clusters it may use (default: all)")
    demand: DemandProfile
    prompt_tokens: TokenDistribution | None = Field(default=None, description="ignored for trace demand")
    output_tokens: TokenDistribution | None = Field(default=None, description="ignored for trace demand")
    slo: Slo = Field(default_factory=Slo)
    priority: int = Field(default=10, description="training jobs of lower priority may be preempted")
    autoscaler: Autoscaler = Field(default_factory=Autoscaler)
    sharing: SharingPolicy = Field(default_factory=InferenceFirst)
    fidelity: Literal["fluid", "discrete"] = "fluid"
    batching: Literal["continuous", "none"] = Field(
        default="continuous", description="continuous batching, or one request at a time per replica"
    )
    control_interval: Duration = 60.0
    queue_timeout: Duration = Field(default=60.0, description="requests waiting longer are rejected")
    replica_model: ReplicaModel = Field(default_factory=ReplicaModel)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    fluid: FluidOptions = Field(default_factory=FluidOptions)
    prefix_cache: PrefixCache | None = None
    disaggregation: Disaggregation | None = Field(
        default=None, description="separate prefill and decode pools (gigafactory_sim/inference/disagg_config.py)"
    )

    @model_validator(mode="after")
    def _tokens(self) -> InferenceService:
        if not isinstance(self.demand, TraceDemand) and (self.prompt_tokens is None or self.output_tokens is None):
            raise ValueError("prompt_tokens and output_tokens are needed unless the demand is a trace")
        if self.control_interval <= 0:
            raise ValueError("control_interval must be positive")
        return self

    def replica_perf(self, gpu: GpuProfile) -> ReplicaPerf:
        """The roofline model of one replica of this service on ``gpu``."""
        m, r, g = self.model, self.replica_model, self.gpus_per_replica
        active, expert_bytes, experts, top_k, eff = 0.0, 0.0, 0, 0, 1.0
        if m.active_params_b is not None and m.experts is not None and m.experts_per_token is not None:
            active, experts, top_k = m.active_params_b * 1e9, m.experts, m.experts_per_token
            expert_bytes = split_experts(m.params, active, experts, top_k)[1] * m.bytes_per_param
            eff = r.moe_efficiency
        return ReplicaPerf(
            params=m.params,
            weight_bytes=m.weight_bytes,
            kv_bytes_per_token=m.kv_bytes,
            gpus=g,
            peak_flops=g * gpu.dense_bf16_tflops * 1e12 * m.flops_multiplier,
            bandwidth_bps=g * gpu.hbm_bandwidth_tbs * 1e12,
            memory_bytes=g * gpu.memory_gb * 1e9,
            prefill_efficiency=r.prefill_efficiency * eff,
            decode_efficiency=r.decode_efficiency * eff,
            memory_efficiency=r.memory_efficiency,
            memory_utilisation=r.memory_utilisation,
            step_overhead_s=r.step_overhead,
            step_token_budget=self.scheduling.prefill_budget_tokens,
            active_params=active,
            expert_bytes=expert_bytes,
            experts=experts,
            experts_per_token=top_k,
            prefix_hit_rate=self.prefix_cache.fixed_hit_rate if self.prefix_cache else 0.0,
            kv_reserved_share=self.prefix_cache.cache_share if self.prefix_cache else 0.0,
        )
