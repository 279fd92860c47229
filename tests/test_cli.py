"""The command line: exit codes, messages naming file/line/field, nothing written on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gigafactory_sim.cli import app

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
runner = CliRunner()


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_run_writes_a_run_dir(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(out), "--seed", "7", "--set", "horizon=3h", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    meta = json.loads((out / "run.json").read_text())
    assert summary["seed"] == 7 and summary["horizon_s"] == 3 * 3600
    assert meta["status"] == "completed" and meta["seed"] == 7
    assert "horizon=3h" in meta["overrides"]
    resolved = (out / "scenario.resolved.yaml").read_text()
    assert "horizon: 3h" in resolved and "seed: 7" in resolved


def test_set_overrides_list_items(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "run",
            str(QUICKSTART),
            "--out",
            str(out),
            "-q",
            "--set",
            "horizon=1h",
            "--set",
            "facility.clusters.0.nodes=16",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "summary.json").read_text())["gpus_total"] == 128


def test_bad_input_exit_2_names_file_line_field_and_writes_nothing(tmp_path: Path) -> None:
    text = QUICKSTART.read_text().replace("      nodes: 64", "      nodez: 64")
    bad = write(tmp_path, text)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    line = text.splitlines().index("      nodez: 64") + 1
    assert f"{bad}:{line}" in res.output
    assert "facility.clusters.0.nodez" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()


def test_bad_override_is_reported_against_set(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(out), "--set", "facility.clusters.0.nodes=-3"])
    assert res.exit_code == 2
    assert "--set facility.clusters.0.nodes" in res.output
    assert not out.exists()


def test_missing_trace_exit_2_nothing_written(tmp_path: Path) -> None:
    text = """
horizon: 1d
facility: {clusters: [{name: c, gpu: H100-SXM, nodes: 2}]}
workload: {training: [{kind: trace, path: nowhere.csv}]}
"""
    bad = write(tmp_path, text)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    assert "nowhere.csv" in res.output and "trace file not found" in res.output
    assert not out.exists()


def test_validate_reports_every_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "horizon: 30\nfacility: {clusters: [{name: c, gpu: Z100, nodes: 0}]}\n")
    res = runner.invoke(app, ["validate", str(QUICKSTART), str(bad)])
    assert res.exit_code == 2
    assert "ok" in res.output
    for field in ("horizon", "facility.clusters.0.nodes"):
        assert field in res.output
    good = runner.invoke(app, ["validate", str(QUICKSTART)])
    assert good.exit_code == 0


def test_gpus_and_schema() -> None:
    res = runner.invoke(app, ["gpus"])
    assert res.exit_code == 0
    for name in ("A100-80GB", "H100-SXM", "H200-SXM", "B200", "MI300X"):
        assert name in res.output
    schema = runner.invoke(app, ["schema"])
    assert schema.exit_code == 0
    doc = json.loads(schema.output)
    assert "facility" in doc["properties"] and "horizon" in doc["required"]


def test_unexpected_error_exit_1_keeps_run_json(tmp_path: Path, monkeypatch: object) -> None:
    import gigafactory_sim.cli as cli

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "execute", boom)  # type: ignore[attr-defined]
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(out), "-q"])
    assert res.exit_code == 1
    assert "disk on fire" in res.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and "disk on fire" in meta["error"]
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]


def test_entry_point_runs_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, "horizon: 5x\nfacility: {clusters: []}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gigafactory_sim", "validate", str(bad)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{bad}:1" in proc.stderr
