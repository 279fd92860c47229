"""Run metadata (``run.json``): version, seed, scenario, git revision, wall time, status."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["base_meta", "git_revision"]


def git_revision() -> str | None:
    """The git commit of the installed package's checkout, if it is one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def base_meta(
    scenario_name: str | None, scenario_file: str | None, seed: int | None, overrides: list[str]
) -> dict[str, Any]:
    from gigafactory_sim.version import __version__

    return {
        "version": __version__,
        "scenario": scenario_name,
        "scenario_file": scenario_file,
        "seed": seed,
        "overrides": overrides,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
    }
