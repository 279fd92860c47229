"""Scenario schema of prefill/decode disaggregation (``disaggregation`` of an inference service).

A disaggregated service runs two pools (Splitwise, Patel et al., ISCA 2024; DistServe, Zhong et al., OSDI 2024):
``prefill`` replicas run prefill-only steps and hand each request's KV cache over ``kv_link`` to a ``decode``
replica, which runs decode-only steps. Each pool has its own replica size and autoscaler; both place replicas on
the service's clusters under its sharing policy. Both pools are required: one without the other is an input
error naming the missing field (:mod:`.disagg_checks`).

Link defaults (``kv_link.gbps`` unset), one link per transfer (assumed; transfers neither contend nor overlap):

- ``node``: 3,600 Gb/s = 450 GB/s, one H100/H200 GPU's NVLink 4 in one direction (the datasheets' "900 GB/s" is
  both directions: 18 links x 25 GB/s each way). Assumes a prefill and a decode replica share a node (checked
  possible: their GPUs fit in one node; not enforced by placement).
- ``network``: 400 Gb/s, one NDR InfiniBand / ConnectX-7 port (an HGX H200 node has one per GPU).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.inference.autoscaler_config import Autoscaler

__all__ = ["KV_LINK_DEFAULT_GBPS", "POOLS", "Disaggregation", "KvLink", "PoolSpec"]

POOLS = ("prefill", "decode")
"""The pools of a disaggregated service, in the order a request meets them."""

KV_LINK_DEFAULT_GBPS = {"node": 3600.0, "network": 400.0}
"""Default rate of one KV transfer by link kind, Gb/s (see the module docstring)."""


class KvLink(StrictModel):
    """The link a request's KV cache crosses from its prefill replica to its decode replica."""

    kind: Literal["node", "network"] = "network"
    gbps: float | None = Field(default=None, gt=0, description="rate of one transfer, Gb/s (default by kind)")

    @property
    def rate_gbps(self) -> float:
        return self.gbps if self.gbps is not None else KV_LINK_DEFAULT_GBPS[self.kind]

    def transfer_s(self, tokens: float, kv_bytes_per_token: float) -> float:
        """Seconds to move the KV cache of ``tokens`` tokens: bytes x 8 / (Gb/s x 1e9)."""
        return tokens * kv_bytes_per_token * 8.0 / (self.rate_gbps * 1e9)


class PoolSpec(StrictModel):
    """One pool of a disaggregated service: its replica size and its own autoscaler."""

    gpus_per_replica: int = Field(default=1, gt=0)
    autoscaler: Autoscaler = Field(default_factory=Autoscaler)


class Disaggregation(StrictModel):
    """Separate prefill and decode pools; both are required (checked with the field named)."""

    prefill: PoolSpec | None = None
    decode: PoolSpec | None = None
    kv_link: KvLink = Field(default_factory=KvLink)
