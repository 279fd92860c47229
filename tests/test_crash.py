"""Crash tests (issue 10): SIGKILL at any moment never publishes a half-written run; stale temporaries are
removed by the next run or by ``clean``; a killed sweep takes its workers with it, and a live one cannot be raced.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gigafactory_sim.analysis.sweep import LOCK
from gigafactory_sim.cli import app
from gigafactory_sim.report.writer import pid_alive, remove_stale_temps

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
COMPLETE = {
    "summary.json",
    "timeseries.parquet",
    "jobs.parquet",
    "scenario.resolved.yaml",
    "report.md",
    "report.html",
    "run.json",
}
runner = CliRunner()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _check_published(out: Path) -> None:
    """``out`` is absent, or a complete run directory, or a run.json-only failure record: never half."""
    if not out.exists():
        return
    names = {p.name for p in out.iterdir()}
    status = json.loads((out / "run.json").read_text())["status"]
    if status == "completed":
        assert names >= COMPLETE, names
    else:
        assert names == {"run.json"} or names >= COMPLETE, names


def test_sigkill_at_random_moments_never_publishes_half_a_run(tmp_path: Path) -> None:
    rng = random.Random(10)
    for i in range(4):
        out = tmp_path / f"run{i}"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gigafactory_sim",
                "run",
                str(QUICKSTART),
                "-q",
                "--out",
                str(out),
                "--set",
                "horizon=3d",
            ],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.8, 3.5))  # import, build, simulate or write: wherever it is
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _check_published(out)
        # the next run of the same target removes the killed one's temporary and publishes a complete run
        res = runner.invoke(
            app, ["run", str(QUICKSTART), "-q", "--out", str(out), "--set", "horizon=1h", "--overwrite"]
        )
        assert res.exit_code == 0, res.output
        assert {p.name for p in out.iterdir()} >= COMPLETE
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")]


def test_clean_removes_stale_temporaries_of_dead_processes_only(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".base.tmp-{dead}"
    stale.mkdir()
    (stale / "summary.json").write_text("{}")
    old = tmp_path / "sweep" / "points" / "p1" / f".rep-0.old-{dead}"
    old.mkdir(parents=True)
    live = tmp_path / f".other.tmp-{os.getppid()}"  # our parent is alive
    live.mkdir()
    file_tmp = tmp_path / "run" / f".run.json.tmp-{dead}"
    file_tmp.parent.mkdir()
    file_tmp.write_text("{")
    keep = tmp_path / "run" / "run.json"
    keep.write_text("{}")
    res = runner.invoke(app, ["clean", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert not stale.exists() and not old.exists() and not file_tmp.exists()
    assert live.exists() and keep.exists()
    assert "3 stale" in res.output
    assert remove_stale_temps(tmp_path) == []
    assert runner.invoke(app, ["clean", str(tmp_path / "nope")]).exit_code == 2


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return {int(x) for x in out.stdout.split()}


def _sweep_cmd(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gigafactory_sim",
        "sweep",
        str(QUICKSTART),
        "--set",
        "horizon=20d",
        "--set",
        "seed=1,2,3,4",
        "--workers",
        "2",
        "--compact",
        "-q",
        "--out",
        str(out),
    ]


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs ps and /proc")
def test_a_killed_sweep_takes_its_workers_with_it(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = subprocess.Popen(_sweep_cmd(out), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = (
            {
                p
                for p in _children(proc.pid)
                if "multiprocessing" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                and "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
            }
            if proc.poll() is None
            else workers
        )
    assert len(workers) >= 1, "no worker started"
    assert (out / LOCK).exists()
    # a second sweep on the same folder is refused while the first lives
    second = subprocess.run(_sweep_cmd(out), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and "another sweep" in second.stderr
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(p) and _not_zombie(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if pid_alive(p) and _not_zombie(p)], "orphaned workers outlived the sweep"
    # the dead sweep's lock is taken over: the resumed sweep runs (here: a shorter grid of the same sweep)
    resumed = subprocess.run(_sweep_cmd(out), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not (out / LOCK).exists()


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
