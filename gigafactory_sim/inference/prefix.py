"""Prefix caching (``prefix_cache: {hit_rate: h, cache_share: s}``): prefill skips the cached part of a prompt.

A share ``h`` of every prompt's tokens is found in the replica's prefix cache (vLLM's automatic prefix caching,
SGLang's RadixAttention) and is not recomputed: prefill work and the prefill tokens a step schedules fall by ``h``
exactly. Attention still reads the whole context, so the KV cache a request holds and reads is unchanged. The
cache competes for KV memory: it keeps ``cache_share`` of the KV space (assumed 0.1 by default), which running
requests cannot use. Units: tokens.
"""

from __future__ import annotations

from dataclasses import replace

from gigafactory_sim.inference.perf import TokenMix

__all__ = ["computed_mix"]


def computed_mix(mix: TokenMix, hit_rate: float) -> TokenMix:
    """The token mix as prefill sees it: prompt moments, quantiles and grid of the uncached ``1 - h`` of each
    prompt; the context terms (``E[I*O]``) keep the whole prompt."""
    if hit_rate <= 0.0:
        return mix
    s = 1.0 - hit_rate
    return replace(
        mix,
        prompt_mean=mix.prompt_mean * s,
        prompt_sq_mean=mix.prompt_sq_mean * s * s,
        prompt_q=mix.prompt_q * s,
        prompt_grid=tuple(x * s for x in mix.prompt_grid),
    )
