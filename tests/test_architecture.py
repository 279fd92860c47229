"""The engine's seam, checked from the source: no import cycle in the package, no module outside the engine
touching an underscore name of another module or writing an engine attribute, the schema free of runtime
modules, and ``gigafactory_sim.units`` free of simpy and pandas."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gigafactory_sim"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every package module ``path`` imports, at any level (module top, functions, ``if TYPE_CHECKING``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            # ``from pkg import submodule`` imports the submodule; ``from pkg import name`` the package itself
            names = subs + ([node.module] if any(sub not in known for sub in subs) else [])
        for name in names:
            if name in known:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_schema_imports_no_runtime_module() -> None:
    """config/ (and every feature's config module) reach neither the engine nor a feature's runtime."""
    g = graph()
    runtime = {
        "gigafactory_sim.sim.engine",
        "gigafactory_sim.sim.facility",
        "gigafactory_sim.features",
        "gigafactory_sim.energy.system",
        "gigafactory_sim.energy.control",
        "gigafactory_sim.reliability.runtime",
        "gigafactory_sim.inference.runtime",
        "gigafactory_sim.inference.service",
        "gigafactory_sim.preparation",
    }
    start = [m for m in g if m.startswith("gigafactory_sim.config")]
    seen: set[str] = set()
    todo = list(start)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(g.get(m, ()))
    assert not (seen & runtime), sorted(seen & runtime)


ENGINE = {"gigafactory_sim.sim.engine"}
ENGINE_ATTRS = {
    "env",
    "facility",
    "meter",
    "streams",
    "scenario",
    "horizon_s",
    "hooks",
    "features",
    "jobs",
    "n_events",
    "ticks",
    "progress",
}


def test_no_module_outside_the_engine_uses_its_private_names() -> None:
    """Outside sim/engine.py nobody calls ``x._name(...)`` on another object or writes an engine attribute
    (``ops.X = ...``, ``sim.X = ...``)."""
    offences: list[str] = []
    for name, path in modules().items():
        if name in ENGINE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls", "os", "sys")):  # os._exit
                    offences.append(f"{path.name}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if (
                        isinstance(t, ast.Attribute)
                        and isinstance(t.value, ast.Name)
                        and t.value.id in ("ops", "sim", "engine")
                        and t.attr in ENGINE_ATTRS
                    ):
                        offences.append(f"{path.name}:{node.lineno}: writes {t.value.id}.{t.attr}")
    assert not offences, offences


def test_units_imports_neither_simpy_nor_pandas() -> None:
    code = "import sys, gigafactory_sim.units; print(sorted(m for m in ('simpy', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"


def test_a_single_site_without_services_imports_neither_the_federation_nor_the_serving_model() -> None:
    """Loading, running and collecting a scenario with no inference services pays for neither a federation's
    modules nor the serving model's (only the configuration classes a scenario file may name); a federation or
    a service imports them when it needs them."""
    code = (
        "import sys, gigafactory_sim as g, gigafactory_sim.cli\n"
        "g.run(g.load_scenario('scenarios/quickstart.yaml', ['horizon=1d']))\n"
        "config = {'config', 'autoscaler_config', 'disagg_config', 'demand', 'tokens', 'moe', 'perf'}\n"
        "print(sorted(m for m in sys.modules if m.startswith('gigafactory_sim.federation')\n"
        "    or (m.startswith('gigafactory_sim.inference.') and m.split('.')[2] not in config)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_the_engine_names_no_feature() -> None:
    """sim/engine.py refers to features only through the registry and the hooks: no feature module, name or
    attribute (``job_energy_j`` is a job's energy, not the energy feature)."""
    features = {"energy", "reliability", "inference"}
    tree = ast.parse((PACKAGE / "sim" / "engine.py").read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        words: list[str] = []
        if isinstance(node, ast.Name):
            words = [node.id]
        elif isinstance(node, ast.Attribute):
            words = [node.attr]
        elif isinstance(node, ast.ImportFrom) and node.module:
            words = node.module.split(".") + [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            words = [w for a in node.names for w in a.name.split(".")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in features:
            words = [node.value]
        found += [w for w in words if w in features or w.lower().startswith(tuple(features))]
    assert not found, found


def test_the_published_functions_are_not_shadowed_by_submodules() -> None:
    """``g.prepare``, ``g.run``, ``g.execute`` stay functions after every submodule is imported (a submodule of
    the same name would replace them on the package)."""
    import importlib
    import pkgutil

    import gigafactory_sim as g

    for mod in pkgutil.walk_packages(g.__path__, "gigafactory_sim."):
        if mod.name.endswith("__main__"):
            continue
        importlib.import_module(mod.name)
    for name in ("prepare", "run", "execute", "load_scenario"):
        assert callable(getattr(g, name)) and not isinstance(getattr(g, name), type(g)), name
