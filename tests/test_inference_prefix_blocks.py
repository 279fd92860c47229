"""Prefix caching from a trace's block hashes (``prefix_cache: {from_trace: true, block_size, cache_share}``).

By hand: the LRU's hits and eviction order, its capacity from KV memory, the hit rate of a trace whose requests
all share one prefix. On the shipped Mooncake sample: a larger cache never hits less, the discrete run's
measured hit rate agrees with the fluid fidelity's replay, prefill work falls by the measured hit share exactly.
Bad input (a hash that is not an integer, a missing field or column, bad field combinations) exits 2 through
the CLI naming file, line and field.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import simpy
from typer.testing import CliRunner

from gigafactory_sim.api import run
from gigafactory_sim.cli import app
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.discrete import DiscreteService
from gigafactory_sim.inference.fluid import ClusterModel
from gigafactory_sim.inference.perf import ReplicaPerf
from gigafactory_sim.inference.prefix_blocks import BlockCache, cached_tokens, capacity_blocks, replay
from gigafactory_sim.inference.prepare import prepare_inference
from gigafactory_sim.inference.trace import load_request_trace
from gigafactory_sim.power.models import GpuPowerModel

H200 = BUILTIN_GPUS["H200-SXM"]
SAMPLE = "builtin:mooncake_conversation_sample.jsonl.gz"


# -- the LRU by hand ---------------------------------------------------------------------------------------
def test_lookup_is_the_longest_cached_prefix() -> None:
    c = BlockCache(10)
    c.insert((1, 2, 3))
    assert c.lookup((1, 2, 3, 4)) == 3
    assert c.lookup((1, 2, 9, 3)) == 2  # a miss ends the prefix, even if later blocks are cached
    assert c.lookup((7, 1)) == 0  # a block id names its prefix too: a first block missing is a miss
    assert c.lookup(()) == 0
    assert cached_tokens(3, 16, 40.0) == 40.0  # the partial last block: the whole prompt
    assert cached_tokens(2, 16, 40.0) == 32.0


def test_eviction_is_least_recently_used_last_block_first() -> None:
    c = BlockCache(3)
    c.insert((1, 2, 3))  # one prompt's blocks: the first is the most recently used
    assert list(c.blocks) == [3, 2, 1]
    c.insert((4,))  # over capacity: the least recently used (the prompt's tail) goes
    assert list(c.blocks) == [2, 1, 4] and c.evicted == 1
    assert c.lookup((1, 2, 3)) == 2  # touches 2, then 1
    assert list(c.blocks) == [4, 2, 1]
    c.insert((5, 6))
    assert list(c.blocks) == [1, 6, 5] and c.evicted == 3
    assert len(BlockCache(0).blocks) == 0
    z = BlockCache(0)
    z.insert((1, 2))
    assert len(z) == 0 and z.lookup((1,)) == 0 and z.evicted == 2


def test_capacity_in_blocks_is_the_cache_share_of_the_kv_memory() -> None:
    perf = ReplicaPerf(
        params=5e9,
        weight_bytes=10e9,
        kv_bytes_per_token=1e5,
        gpus=1,
        peak_flops=1e15,
        bandwidth_bps=1e12,
        memory_bytes=100e9,
        memory_utilisation=0.9,
        kv_reserved_share=0.1,
    )
    # (100 GB x 0.9 - 10 GB) x 0.1 / (512 tokens x 1e5 B) = 8e9 / 5.12e7 = 156.25 -> 156 blocks
    assert capacity_blocks(perf, 0.1, 512) == 156
    assert capacity_blocks(perf, 0.1, 16) == 5000
    # the running requests keep the rest of the KV space: the cache competes for it
    assert perf.kv_capacity_tokens == pytest.approx(0.9 * 80e9 / 1e5)


def test_a_shared_prefix_gives_the_hit_rate_computed_by_hand() -> None:
    # 10 requests: 4 shared blocks of 16 tokens, then 2 + i blocks of their own
    n, shared, bs = 10, 4, 16
    hashes = [tuple(range(shared)) + tuple(1000 * (i + 1) + k for k in range(2 + i)) for i in range(n)]
    prompts = [float(bs * len(h)) for h in hashes]
    total = sum(prompts)
    one = replay(hashes, prompts, bs, capacity=1000, replicas=1)
    assert one.hit_rate == pytest.approx((n - 1) * shared * bs / total)  # all but the first hit the prefix
    rr = replay(hashes, prompts, bs, capacity=1000, replicas=3)
    assert rr.hit_rate == pytest.approx((n - 3) * shared * bs / total)  # the first on each replica misses
    small = replay(hashes, prompts, bs, capacity=shared, replicas=1)
    # a cache of 4 blocks keeps the shared prefix (the most recently used end of each prompt) for the next
    assert small.hit_rate == pytest.approx((n - 1) * shared * bs / total)
    tiny = replay(hashes, prompts, bs, capacity=2, replicas=1)
    # a cache of 2 blocks keeps blocks 0 and 1 (a prompt's tail is evicted first): every later request hits 2
    assert tiny.hit_rate == pytest.approx((n - 1) * 2 * bs / total)
    assert tiny.evicted_blocks == sum(len(h) for h in hashes) - 2 * n


def _sample_hashes() -> tuple[list[tuple[int, ...]], np.ndarray]:
    tr = load_request_trace(TraceDemand(path=SAMPLE, format="mooncake"), Path.cwd(), 1e9, "x", hashes=True)
    assert tr.base_hashes is not None
    return list(tr.base_hashes), tr.base_prompt


def test_a_larger_cache_never_hits_less_on_the_sample() -> None:
    hashes, prompts = _sample_hashes()
    perf = cluster_perf()
    rates = []
    for share in (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 0.9):
        cap = capacity_blocks(perf, share, 512)
        rates.append([replay(hashes, prompts.tolist(), 512, cap, r).hit_rate for r in (1, 4)])
    by_share = np.array(rates)
    assert by_share[0].tolist() == [0.0, 0.0]
    assert np.all(np.diff(by_share, axis=0) >= 0)  # LRU keeps the inclusion property
    infinite = replay(hashes, prompts.tolist(), 512, 10**9, 1).hit_rate
    assert by_share[-1, 0] <= infinite == pytest.approx(0.2941, abs=1e-4)


# -- the engine on a trace ---------------------------------------------------------------------------------
LLAMA3_8B = "{params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}"
SCENARIO = """
name: prefix-blocks
seed: 1
horizon: {horizon}
facility:
  clusters: [{{name: h200, gpu: H200-SXM, nodes: 1}}]
workload:
  inference:
    - name: svc
      model: {model}
      fidelity: {fidelity}
      demand: {demand}{tokens}
      slo: {{ttft: 30s, tpot: 200ms}}
      autoscaler: {{min_replicas: {replicas}, max_replicas: {replicas}}}
      prefix_cache: {prefix}
      scheduling: {{chunked_prefill: {chunked}}}
report: {{interval: {interval}}}
"""
SAMPLE_DEMAND = f"{{kind: trace, format: mooncake, path: '{SAMPLE}', loop: false}}"


def scenario_text(**kw: object) -> str:
    base: dict[str, object] = dict(
        horizon="669s",
        model=LLAMA3_8B,
        fidelity="fluid",
        demand=SAMPLE_DEMAND,
        replicas=4,
        prefix="{from_trace: true, block_size: 512, cache_share: 0.1}",
        chunked="false",
        tokens="",
        interval="5m",
    )
    return SCENARIO.format(**{**base, **kw})


def cluster_perf() -> ReplicaPerf:
    sc = parse_scenario_text(scenario_text(), "p.yaml")
    return sc.workload.inference[0].replica_perf(H200)


def prefix_summary(**kw: object) -> dict:
    r = run(parse_scenario_text(scenario_text(**kw), "p.yaml"))
    return r.summary["inference"]["services"]["svc"]


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_discrete_and_fluid_agree_on_the_measured_hit_rate(share: float) -> None:
    """Fluid: one pass of the trace replayed through 4 caches round-robin; discrete: 4 replicas pulling from one
    queue, each with its cache, admitting at step boundaries. Measured: 0.0372 / 0.0367 (share 0.1), 0.0451 /
    0.0468 (share 0.5); the test allows 10 %."""
    prefix = f"{{from_trace: true, block_size: 512, cache_share: {share}}}"
    fluid = prefix_summary(fidelity="fluid", prefix=prefix)["prefix_cache"]
    disc = prefix_summary(fidelity="discrete", prefix=prefix)["prefix_cache"]
    assert fluid["source"] == "replay" and disc["source"] == "run" and fluid["replay_replicas"] == 4
    assert fluid["hit_rate_measured"] == fluid["hit_rate_replay"] == disc["hit_rate_replay"]
    assert disc["hit_rate_measured"] == pytest.approx(fluid["hit_rate_measured"], rel=0.10)
    assert 0.0 < fluid["hit_rate_measured"] < 0.2941  # below one infinite cache's share
    assert fluid["cache_blocks_per_replica"] == capacity_blocks(cluster_perf(), share, 512)


def test_without_the_cache_the_summary_has_no_prefix_section() -> None:
    s = prefix_summary(prefix="null", replicas=4)
    assert "prefix_cache" not in s


@dataclass(frozen=True)
class RecordingPerf(ReplicaPerf):
    steps: list[float] = field(default_factory=list, compare=False)

    def step_gpu_power_w(
        self, model: GpuPowerModel, n_decode: float, ctx_tokens: float, prefill_tokens: float
    ) -> float:
        self.steps.append(prefill_tokens)
        return super().step_gpu_power_w(model, n_decode, ctx_tokens, prefill_tokens)


@pytest.mark.parametrize("chunked", [False, True])
def test_prefill_work_falls_by_the_measured_hit_share_exactly(chunked: bool) -> None:
    sc = parse_scenario_text(scenario_text(chunked=str(chunked).lower()), "p.yaml")
    (p,) = prepare_inference(sc) or []
    assert p.blocks is not None and p.trace is not None
    h = p.blocks.replay.hit_rate
    # fluid: prefill sees (1 - h) of the mean prompt; the reported prompt tokens stay whole
    assert p.mix.prompt_mean == pytest.approx((1 - h) * p.raw_prompt_mean, rel=1e-12)
    assert p.models[0].perf.prefix_hit_rate == h
    # discrete: every step's prefill tokens, summed, are the prompts less the tokens the caches hit
    n = 600
    times, prompt, output = (x[:n] for x in p.trace.materialise())
    hashes = p.trace.materialise_hashes()[:n]
    cm = p.models[0]
    perf = RecordingPerf(**{k: getattr(cm.perf, k) for k in ReplicaPerf.__dataclass_fields__})
    env = simpy.Environment()
    disc = DiscreteService(
        env,
        {0: ClusterModel(perf, cm.power, cm.cap, 64)},
        p.mix,
        "continuous",
        1e9,
        prefix_block_size=512,
        prefix_capacity_blocks={0: 400},
    )
    disc.feed(times, prompt, output, hashes)
    disc.add_replica(0)
    disc.add_replica(0)
    env.run()
    m = disc.prefix_measured()
    assert m is not None and m.requests == n and m.prompt_tokens == pytest.approx(prompt.sum())
    assert 0.0 < m.hit_rate < 1.0
    assert sum(perf.steps) == pytest.approx((1.0 - m.hit_rate) * prompt.sum(), rel=1e-12)


def test_a_shared_prefix_through_the_engine_gives_the_hand_hit_rate(tmp_path: Path) -> None:
    # one replica, requests 10 s apart (each prefilled before the next arrives): all but the first hit the
    # 4 shared blocks of 16 tokens
    rows = ["arrival_s,prompt_tokens,output_tokens,hash_ids"]
    prompts = []
    for i in range(12):
        own = 1 + i % 3
        ids = [0, 1, 2, 3] + [100 * (i + 1) + k for k in range(own)]
        prompts.append(16 * len(ids))
        rows.append(f"{10 * i},{prompts[-1]},20,{' '.join(map(str, ids))}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    text = scenario_text(
        fidelity="discrete",
        horizon="130s",
        interval="1m",
        replicas=1,
        demand=f"{{kind: trace, path: '{tmp_path / 't.csv'}', loop: false}}",
        prefix="{from_trace: true, block_size: 16}",
    )
    pc = run(parse_scenario_text(text, "p.yaml")).summary["inference"]["services"]["svc"]["prefix_cache"]
    hand = 11 * 64 / sum(prompts)
    assert pc["hit_rate_measured"] == pytest.approx(hand) and pc["hit_rate_replay"] == pytest.approx(hand)


def test_a_looped_trace_repeats_as_new_traffic() -> None:
    demand = TraceDemand(path=SAMPLE, format="mooncake", loop=True)
    tr = load_request_trace(demand, Path.cwd(), 1400.0, "x", hashes=True)
    hashes = tr.materialise_hashes()
    assert len(hashes) == len(tr) > 2000
    first = {b for h in hashes[:2000] for b in h}
    assert not first & {b for h in hashes[2000:] for b in h}  # the second pass shares no block with the first
    assert hashes[2000] == tuple(x + max(first) + 1 for x in hashes[0])


# -- bad input ---------------------------------------------------------------------------------------------
def cli(tmp_path: Path, text: str) -> tuple[int, str]:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(f)])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def write_jsonl(path: Path, rows: list[str]) -> str:
    path.write_text("\n".join(rows) + "\n")
    return f"{{kind: trace, format: mooncake, path: '{path}', loop: false}}"


GOOD = json.dumps({"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]})


@pytest.mark.parametrize(
    ("bad", "name", "what"),
    [
        ('{"timestamp": 5, "input_length": 600, "output_length": 5, "hash_ids": [1, "x"]}', "hash_ids", "integer"),
        ('{"timestamp": 5, "input_length": 600, "output_length": 5, "hash_ids": [1, 2.5]}', "hash_ids", "integer"),
        ('{"timestamp": 5, "input_length": 600, "output_length": 5}', "hash_ids", "missing"),
        ('{"timestamp": 5, "output_length": 5, "hash_ids": [1]}', "input_length", "missing"),
        ('{"timestamp": "soon", "input_length": 6, "output_length": 5, "hash_ids": []}', "timestamp", "number"),
        ('{"timestamp": 5, "input_length', "line", "JSON"),
    ],
)
def test_bad_mooncake_rows_exit_2_naming_file_line_and_field(tmp_path: Path, bad: str, name: str, what: str) -> None:
    demand = write_jsonl(tmp_path / "t.jsonl", [GOOD, GOOD, bad])
    code, out = cli(tmp_path, scenario_text(demand=demand, replicas=1))
    assert code == 2, out
    assert "t.jsonl" in out and f"field '{name}'" in out and what in out and "line 3" in out, out
    assert "Traceback" not in out


def test_bad_hash_in_a_csv_column_exits_2(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens,hash_ids\n0,32,5,1 2\n1,32,5,1 b\n")
    demand = f"{{kind: trace, path: '{tmp_path / 't.csv'}', loop: false}}"
    code, out = cli(tmp_path, scenario_text(demand=demand, replicas=1, prefix="{from_trace: true, block_size: 16}"))
    assert code == 2 and "t.csv" in out and "hash_ids" in out and "line(s) 3" in out and "'b'" in out, out
    assert "Traceback" not in out


def test_from_trace_with_a_trace_lacking_hashes_names_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,32,5\n1,32,5\n")
    demand = f"{{kind: trace, path: '{tmp_path / 't.csv'}', loop: false}}"
    code, out = cli(tmp_path, scenario_text(demand=demand, replicas=1))
    assert code == 2 and "t.csv" in out and "prefix_cache.from_trace" in out and "hash_ids" in out, out
    assert "Traceback" not in out


def test_a_block_size_that_does_not_match_the_trace_is_an_error(tmp_path: Path) -> None:
    # the sample's blocks are 512 tokens: at 4096 a 13k prompt has 4 blocks, not 27 hashes
    code, out = cli(tmp_path, scenario_text(prefix="{from_trace: true, block_size: 4096}"))
    assert code == 2 and "prefix_cache.block_size" in out and "mooncake_conversation_sample" in out, out


@pytest.mark.parametrize(
    ("prefix", "demand", "field_name", "what"),
    [
        ("{hit_rate: 0.3, from_trace: true}", SAMPLE_DEMAND, "from_trace", "not both"),
        ("{cache_share: 0.2}", SAMPLE_DEMAND, "hit_rate", "give hit_rate"),
        ("{from_trace: true}", "{kind: constant, rate_per_s: 1}", "from_trace", "trace demand"),
        ("{hit_rate: 0.3, block_size: 16}", SAMPLE_DEMAND, "block_size", "from_trace"),
        ("{from_trace: true, block_size: 0}", SAMPLE_DEMAND, "block_size", "greater than 0"),
        ("{hit_rate: 1.5}", SAMPLE_DEMAND, "hit_rate", "less than or equal to 1"),
    ],
)
def test_bad_prefix_cache_fields_are_input_errors_naming_the_field(
    prefix: str, demand: str, field_name: str, what: str
) -> None:
    tokens = "\n      prompt_tokens: {kind: fixed, value: 500}\n      output_tokens: {kind: fixed, value: 50}"
    text = scenario_text(prefix=prefix, demand=demand, tokens=tokens if "constant" in demand else "")
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(text, "bad.yaml", base_dir=Path.cwd())
    found = [(p.field, p.message) for p in exc.value.problems]
    assert any(f == f"workload.inference.0.prefix_cache.{field_name}" and what in m for f, m in found), found


def test_gzipped_jsonl_and_plain_jsonl_read_the_same(tmp_path: Path) -> None:
    rows = [GOOD, json.dumps({"timestamp": 1500, "input_length": 10, "output_length": 1, "hash_ids": [3]})]
    plain = tmp_path / "a.jsonl"
    plain.write_text("\n".join(rows) + "\n\n")
    packed = tmp_path / "a.jsonl.gz"
    with gzip.open(packed, "wt") as f:
        f.write("\n".join(rows))
    for p in (plain, packed):
        tr = load_request_trace(TraceDemand(path=str(p), format="mooncake"), tmp_path, 10.0, "x", hashes=True)
        assert tr.base_s.tolist() == [0.0, 1.5] and tr.base_hashes == ((1, 2), (3,))
        assert tr.base_prompt.tolist() == [600.0, 10.0] and tr.base_output.tolist() == [5.0, 1.0]
    no_hashes = load_request_trace(TraceDemand(path=str(plain), format="mooncake"), tmp_path, 10.0, "x")
    assert no_hashes.base_hashes is None


@pytest.mark.parametrize("prefix", ["{hit_rate: 1.5}", "{hit_rate: -0.1}", "{hit_rate: 0.2, from_trace: true}"])
def test_a_bad_hit_rate_exits_2_through_the_cli(tmp_path: Path, prefix: str) -> None:
    code, out = cli(tmp_path, scenario_text(prefix=prefix))
    assert code == 2 and "workload.inference.0.prefix_cache." in out and "bad.yaml" in out, out
    assert "Traceback" not in out
