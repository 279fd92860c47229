"""The README's examples run: the Python API block is extracted and run as a script, in a fresh process, the way
a reader would run it (short horizons via GIGAFACTORY_SIM_SHORT=1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_block(after_heading: str) -> str:
    """The first ```python block after the line ``after_heading``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{after_heading}\n")
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no python block after {after_heading!r}"
    return match.group(1)


def test_python_api_example_runs_as_a_script(tmp_path: Path) -> None:
    code = python_block("### Python API")
    assert 'if __name__ == "__main__":' in code  # sweeps start worker processes that import the script
    script = tmp_path / "api_example.py"
    script.write_text(code, encoding="utf-8")
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")  # the example's paths are relative to the repository
    env = {
        **os.environ,
        "GIGAFACTORY_SIM_SHORT": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "p001-nodes=64" in done.stdout  # the sweep printed its second point
