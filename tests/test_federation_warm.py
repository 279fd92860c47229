"""``initial_state: steady`` for a federation: warm jobs at t = 0 only where their source's residency allows, the
GPUs of each source near its offered load and capped by the GPUs it may use, the placement policy's choice among
the sites with room, nothing moved over the network, a one-site federation equal to the facility alone, and
deterministic, horizon-independent draws."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import gigafactory_sim as g
from gigafactory_sim.api import prepare_any
from gigafactory_sim.cli import app
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.federation.config import Federation
from gigafactory_sim.federation.placement import PLACEMENTS
from gigafactory_sim.federation.prepare import PreparedFederation
from gigafactory_sim.federation.residency import allows
from gigafactory_sim.result import RunResult
from gigafactory_sim.workload.warm_start import WARM_START_SOURCE

ROOT = Path(__file__).resolve().parents[1]
MEDIAN_S, SIGMA = 3600.0, 1.0
MEAN_S = MEDIAN_S * math.exp(SIGMA**2 / 2)  # mean run time of the lognormal below (every GPU an H200)


def _site(name: str, country: str, nodes: int, operator: str = "eu_controlled") -> dict:
    return {
        "name": name,
        "country": country,
        "sovereignty": {"operator": operator, "assurance": 3},
        "facility": {"clusters": [{"name": "h200", "gpu": "H200-SXM", "nodes": nodes}]},
    }


def _source(name: str, offered_gpus: float, residency: dict | None, home: str, gpus: list[int] | None = None) -> dict:
    """A stream whose offered load is ``offered_gpus`` (1-GPU jobs by default: rate x mean run time)."""
    sizes = gpus or [1]
    src: dict[str, Any] = {
        "kind": "synthetic",
        "name": name,
        "home": home,
        "data": {"dataset_gb": 100},
        "arrivals": {"kind": "poisson", "rate_per_hour": float(offered_gpus / np.mean(sizes) / MEAN_S * 3600.0)},
        "classes": [
            {
                "name": "one",
                "share": 1.0,
                "sizes": {"kind": "choice", "gpus": sizes},
                "duration": {"kind": "lognormal", "median": "1h", "sigma": SIGMA, "min": "1s", "max": "1000d"},
            }
        ],
    }
    if residency is not None:
        src["residency"] = residency
    return src


def _doc(paris_nodes: int = 1000, placement: str = "least_loaded", **extra: Any) -> dict:
    doc: dict[str, Any] = {
        "name": "fed-warm",
        "seed": 11,
        "start": "2020-06-01T00:00:00Z",
        "horizon": "10m",
        "initial_state": "steady",
        "report": {"interval": "5m", "plots": False},
        "sites": [
            _site("paris", "FR", paris_nodes),
            _site("berlin", "DE", 1000),
            _site("cph", "DK", 250, "third_country"),
        ],
        "network": {
            "links": [
                {"between": ["paris", "berlin"], "bandwidth_gbps": 100},
                {"between": ["paris", "cph"], "bandwidth_gbps": 50},
                {"between": ["berlin", "cph"], "bandwidth_gbps": 50},
            ]
        },
        "workload": {
            "training": [
                _source("open", 6000.0, None, "cph"),
                _source("health", 2000.0, {"countries": ["FR"]}, "paris"),
                _source("research", 1500.0, {"eu_only": True, "operator": "eu_controlled"}, "berlin"),
            ]
        },
        "placement": {"kind": placement},
    }
    doc.update(extra)
    return doc


def _load(doc: dict) -> Federation:
    fed = parse_scenario_text(yaml.safe_dump(doc, sort_keys=False), "fed.yaml", base_dir=ROOT)
    assert isinstance(fed, Federation)
    return fed


def _warm(r: RunResult) -> pd.DataFrame:
    jobs = r.jobs
    warm = jobs[jobs["source"] == WARM_START_SOURCE].copy()
    warm["origin"] = warm["tenant"].str.removeprefix(f"{WARM_START_SOURCE}-")
    return warm


def _held_at_start(warm: pd.DataFrame, by: str) -> dict[str, int]:
    running = warm[warm["start_s"] == 0.0]
    return {str(k): int(v) for k, v in running.groupby(by)["gpus"].sum().items()}


def test_every_site_starts_warm_and_only_where_the_rules_allow() -> None:
    fed = _load(_doc())
    r = g.run(fed)
    warm = _warm(r)
    assert set(warm["site"]) == {"paris", "berlin", "cph"}  # every site holds jobs in progress at t = 0
    assert (warm["submit_s"] == 0.0).all() and (warm["start_s"] == 0.0).all()  # 1-GPU jobs: all start at once
    rules = {s.name: s.residency for s in fed.workload.training}
    sites = {s.name: s for s in fed.sites}
    for origin, site in zip(warm["origin"], warm["site"], strict=True):
        assert allows(rules[origin], sites[site]), (origin, site)
    assert set(warm.loc[warm["origin"] == "health", "site"]) == {"paris"}
    assert "cph" not in set(warm.loc[warm["origin"] == "research", "site"])
    assert r.summary["residency"]["violations"] == 0
    # warm jobs are already where they run: no data crossed a link for them, no egress
    assert (warm["transfer_gb"] == 0.0).all() and (warm["egress_eur"] == 0.0).all()
    assert (warm["delivered_s"] == 0.0).all()
    # no site holds more than its GPUs at t = 0
    for name, gpus in _held_at_start(warm, "site").items():
        assert gpus <= sites[name].facility.gpus


def test_gpus_held_at_start_are_the_offered_load_of_each_source() -> None:
    """Uncapped (every set of sources fits), each source holds its offered load at t = 0 within 1 %, the
    tolerance of the single-site test (tests/test_steady.py, 10,000 GPUs of 1-GPU lognormal jobs)."""
    r = g.run(_load(_doc()))
    held = _held_at_start(_warm(r), "origin")
    print(f"GPUs held at t = 0 by source: {held} (offered: open 6000, health 2000, research 1500)")
    assert held["open"] == pytest.approx(6000.0, rel=0.01)
    assert held["health"] == pytest.approx(2000.0, rel=0.01)
    assert held["research"] == pytest.approx(1500.0, rel=0.01)
    # the site statistics count the warm jobs and leave them out of the arrivals
    stats = g.run(_load(_doc(statistics={"warmup": "0s"}))).summary["statistics"]["sites"]
    for name, res in r.sites.items():
        assert stats[name]["warm_start_jobs"] == int((res.jobs["source"] == WARM_START_SOURCE).sum())


def test_a_confined_source_is_capped_at_the_gpus_of_its_sites() -> None:
    """health may only use paris (1,000 GPUs) and offers 2,000: it is capped at paris's GPUs (the single-site
    capacity rule, per set of sites); placed first (it is the most confined), it fills paris, and the sources
    that may go elsewhere start where there is room."""
    r = g.run(_load(_doc(paris_nodes=125)))
    warm = _warm(r)
    held = _held_at_start(warm, "origin")
    print(f"capped: GPUs held at t = 0 by source {held}, by site {_held_at_start(warm, 'site')}")
    assert held["health"] == pytest.approx(1000.0, rel=0.01) and held["health"] <= 1000
    assert set(warm.loc[warm["site"] == "paris", "origin"]) == {"health"}
    assert held["open"] == pytest.approx(6000.0, rel=0.01)
    assert held["research"] == pytest.approx(1500.0, rel=0.01)


@pytest.mark.parametrize("kind", sorted(PLACEMENTS))
def test_every_policy_starts_warm_within_the_rules_and_the_sites_gpus(kind: str) -> None:
    fed = _load(_doc(placement=kind, horizon="1s", report={"interval": "1s", "plots": False}))
    r = g.run(fed)
    warm = _warm(r)
    rules = {s.name: s.residency for s in fed.workload.training}
    sites = {s.name: s for s in fed.sites}
    assert all(allows(rules[o], sites[k]) for o, k in zip(warm["origin"], warm["site"], strict=True))
    assert all(gpus <= sites[k].facility.gpus for k, gpus in _held_at_start(warm, "site").items())
    assert sum(_held_at_start(warm, "origin").values()) == pytest.approx(9500.0, rel=0.01)
    assert r.summary["residency"]["violations"] == 0 and (warm["transfer_gb"] == 0.0).all()


def test_the_placement_policy_chooses_among_the_sites_with_room() -> None:
    """home: each job in progress is at its home while it has room, then where it starts first (at once)."""
    warm = _warm(g.run(_load(_doc(placement="home"))))
    by = warm.groupby(["origin", "site"])["gpus"].sum()
    assert set(warm.loc[warm["origin"] == "health", "site"]) == {"paris"}
    assert set(warm.loc[warm["origin"] == "research", "site"]) == {"berlin"}
    assert by["open", "cph"] == 2000  # cph (2,000 GPUs) is full with open's jobs ...
    assert by["open"].sum() == pytest.approx(6000.0, rel=0.01)  # ... the rest started at the other sites
    assert (warm["start_s"] == 0.0).all()


def test_one_site_federation_starts_as_the_facility_alone() -> None:
    """The same jobs in progress (same named streams, same clusters, one site to place them on), so the same
    jobs and time series: exact."""
    flat = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    flat["initial_state"] = "steady"
    fed = {k: v for k, v in flat.items() if k != "facility"}
    facility = dict(flat["facility"])
    name, country = facility.pop("name"), facility.pop("country")
    fed["sites"] = [{"name": name, "country": country, "facility": facility}]
    fed["workload"] = copy.deepcopy(flat["workload"])
    a = g.run(parse_scenario_text(yaml.safe_dump(flat), "flat.yaml", base_dir=ROOT))
    b = g.run(parse_scenario_text(yaml.safe_dump(fed), "fed.yaml", base_dir=ROOT))
    assert int((a.jobs["source"] == WARM_START_SOURCE).sum()) >= 10
    site = b.sites[name]
    pd.testing.assert_frame_equal(a.jobs, site.jobs)
    pd.testing.assert_frame_equal(a.timeseries, site.timeseries)
    assert b.summary["energy"]["it_mwh"] == a.summary["energy"]["it_mwh"]


def test_same_seed_same_warm_federation_and_the_draws_ignore_the_horizon() -> None:
    doc = _doc(placement="weighted")
    a, b = g.run(_load(doc)), g.run(_load(doc))
    pd.testing.assert_frame_equal(a.jobs, b.jobs)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    assert a.summary == b.summary
    longer: PreparedFederation = prepare_any(_load({**doc, "horizon": "1h"}))  # type: ignore[assignment]
    short: PreparedFederation = prepare_any(_load(doc))  # type: ignore[assignment]
    is_warm = np.array(short.jobs.sources)[short.jobs.source_idx] == WARM_START_SOURCE
    n_warm = int(is_warm.sum())
    assert 0 < n_warm < len(short.jobs) and is_warm[:n_warm].all()  # the jobs in progress come first
    for col in ("gpus", "work_s", "priority", "submit_s"):
        assert np.array_equal(getattr(short.jobs, col)[:n_warm], getattr(longer.jobs, col)[:n_warm])


def test_empty_is_the_default_and_adds_nothing() -> None:
    doc = _doc()
    del doc["initial_state"]
    fed = _load(doc)
    assert fed.initial_state == "empty"
    prepared: PreparedFederation = prepare_any(fed)  # type: ignore[assignment]
    assert WARM_START_SOURCE not in prepared.jobs.sources
    assert not any(p.warm for p in prepared.sources)


def test_eu_federation_starts_steady_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", str(ROOT / "scenarios" / "eu-federation.yaml"), "--out", str(out), "-q"]
    res = CliRunner().invoke(app, [*args, "--set", "initial_state=steady", "--set", "horizon=2h"])
    assert res.exit_code == 0, res.output
    jobs = pd.read_parquet(out / "jobs.parquet")
    warm = jobs[jobs["source"] == WARM_START_SOURCE]
    assert set(warm["site"]) == {"paris", "frankfurt", "helsinki", "copenhagen"}
    assert (warm["start_s"] == 0.0).mean() > 0.95
    assert "initial_state: steady" in (out / "scenario.resolved.yaml").read_text()
