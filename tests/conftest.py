"""Shared helpers for the core test layers: build a scenario from YAML text, write a small trace CSV."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.config.scenario import Scenario

ParseFn = Callable[..., Scenario]
TraceFn = Callable[[Sequence[tuple[float, int, float]]], Path]


def parse_yaml(text: str, overrides: Sequence[str] = (), base_dir: Path | None = None) -> Scenario:
    """Validate scenario YAML written inline in a test (dedented) as if it were ``test.yaml``."""
    return parse_scenario_text(textwrap.dedent(text), "test.yaml", overrides, base_dir=base_dir)


@pytest.fixture(scope="session")
def parse() -> ParseFn:
    return parse_yaml


@pytest.fixture
def write_trace(tmp_path: Path) -> TraceFn:
    """Write ``(submit_s, gpus, duration_s)`` rows as a generic trace CSV in ``tmp_path``; returns its path."""

    def write(rows: Sequence[tuple[float, int, float]]) -> Path:
        path = tmp_path / f"trace{len(list(tmp_path.glob('trace*.csv')))}.csv"
        lines = ["submit_s,gpus,duration_s", *(f"{s!r},{g},{d!r}" for s, g, d in rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write
