"""What a run will cost, from its scenario alone, before anything is built: jobs, events, report rows, memory.

A run's size is set by its input: an arrival rate of ``1e12`` per hour, a horizon of ``10000w`` or a report
interval of ``1e-9s`` would each build tables larger than the machine. :func:`estimate` reads only the scenario
(and counts the rows of its trace files; a request trace of up to two million rows is also read, to count the
requests it lays over the horizon once scaled and looped) and :func:`check_limits` refuses a run whose
estimate is beyond its :class:`Limits` with a :class:`~gigafactory_sim.errors.ScenarioError` that gives the
estimate, what dominates it and how to raise the limit.

The figures are deliberately rough (within a factor of about two of the shipped scenarios' measured events and
peak memory, erring high): they guard the machine, they do not predict wall time.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pydantic import ByteSize, TypeAdapter

from gigafactory_sim.config.limits import LimitsConfig
from gigafactory_sim.config.scenario import Facility, Scenario, ScenarioBase
from gigafactory_sim.errors import InputProblem, ScenarioError

if TYPE_CHECKING:
    from gigafactory_sim.federation.config import Federation
    from gigafactory_sim.inference.demand import TraceDemand

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_MAX_MEMORY",
    "Estimate",
    "Limits",
    "LimitsConfig",
    "check_limits",
    "estimate",
    "parse_memory",
]

DEFAULT_MAX_MEMORY = 8 * 2**30
"""Default memory limit: 8 GiB, half of a 16 GB laptop (benchmark-year, a million jobs, estimates ~1.5 GiB)."""
DEFAULT_MAX_EVENTS = 500_000_000
"""Default event limit: about an hour at the ~140k events/s the engine reaches (benchmark-year: ~6 million)."""

BASE_BYTES = 200e6  # interpreter, numpy, pandas, SimPy and the model before any job
BYTES_PER_JOB = 1_000.0  # job arrays, the Job object while live, records and the jobs table (measured ~450)
EVENTS_PER_JOB = 6.0  # arrival, passes, start, end, checkpoints (base measures ~5.2 with everything on)
BYTES_PER_CANDIDATE = 24.0  # thinning candidates and acceptance draws of diurnal arrivals
BYTES_PER_REQUEST = 24.0  # arrival, prompt and output arrays of replayed or generated requests
BYTES_PER_DISCRETE_REQUEST = 300.0  # a request object in the discrete service model
EVENTS_PER_DISCRETE_REQUEST = 3.0
EVENTS_PER_FAILURE = 4.0  # failure, repair, interrupted job's restart and its pass
COUNT_CAP = 1_000_000_000  # stop counting trace rows past this many (already far beyond any limit)


@dataclass(frozen=True)
class Limits:
    max_memory_bytes: float = DEFAULT_MAX_MEMORY
    max_events: float = DEFAULT_MAX_EVENTS

    @classmethod
    def resolve(
        cls, scenario: ScenarioBase | None, max_memory: str | None = None, max_events: float | None = None
    ) -> Limits:
        """Command line over the scenario's ``limits:`` over the defaults. ``max_memory`` like ``16GB``."""
        cfg: LimitsConfig | None = scenario.limits if scenario is not None else None
        memory = (
            float(parse_memory(max_memory))
            if max_memory is not None
            else (float(cfg.max_memory) if cfg is not None and cfg.max_memory is not None else DEFAULT_MAX_MEMORY)
        )
        events = (
            float(max_events)
            if max_events is not None
            else (float(cfg.max_events) if cfg is not None and cfg.max_events is not None else DEFAULT_MAX_EVENTS)
        )
        return cls(memory, events)


def parse_memory(text: str) -> int:
    """``"8GB"``, ``"512MiB"``, ``"1.5 GiB"`` or a number of bytes; :class:`ValueError` if not a size."""
    try:
        return int(TypeAdapter(ByteSize).validate_python(text.strip()))
    except Exception as exc:  # pydantic's ValidationError: re-raised as a plain ValueError for the CLI
        raise ValueError(f"{text!r} is not a memory size; write e.g. 8GB or 16GiB") from exc


@dataclass
class Estimate:
    """Expected size of a run. ``parts`` name what contributes (``(field, what, events, bytes)``)."""

    jobs: float = 0.0
    events: float = 0.0
    report_rows: float = 0.0
    memory_bytes: float = BASE_BYTES
    parts: list[tuple[str, str, float, float]] = field(default_factory=list)

    def add(self, where: str, what: str, events: float, memory_bytes: float) -> None:
        self.events += events
        self.memory_bytes += memory_bytes
        self.parts.append((where, what, events, memory_bytes))

    def summary(self) -> str:
        return (
            f"about {_count(self.jobs)} jobs, {_count(self.events)} events, {_count(self.report_rows)} report "
            f"rows and {_bytes(self.memory_bytes)} of memory"
        )


def _count(x: float) -> str:
    if not math.isfinite(x):
        return "infinitely many"
    return f"{x:,.0f}" if x < 1e7 else f"{x:.2g}"


def _bytes(x: float) -> str:
    if not math.isfinite(x):
        return "unbounded"
    if x >= 2**40 * 1e6:  # (beyond a million TiB the digits say nothing)
        return f"{x / 2**40:.1e} TiB"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if x >= size:
            return f"{x / size:,.1f} {unit}"
    return f"{x / 1024:,.0f} KiB"


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def count_rows(path: Path, cap: int = COUNT_CAP) -> int:
    """Data rows of a CSV (lines after the header), counted without parsing; 0 if it cannot be read (the build
    reports that properly)."""
    lines = 0
    last = b"\n"
    try:
        with _open(path) as fh:
            while lines <= cap:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except (OSError, EOFError, ValueError):
        return 0
    lines += last != b"\n"
    return max(lines - 1, 0)


PARSE_ROWS_MAX = 2_000_000  # traces up to this many rows are read to count their requests over the horizon


def _trace_requests(demand: TraceDemand, scenario: Scenario | Federation, where: str, rows: float) -> float:
    """Requests a trace lays over the horizon: its rows scaled in rate and looped (read with the trace reader,
    for traces of up to :data:`PARSE_ROWS_MAX` rows; a larger one, or one the reader refuses, counts its rows:
    the build reports a bad file properly)."""
    from gigafactory_sim.inference.trace import load_request_trace

    if rows > PARSE_ROWS_MAX or rows == 0:
        return rows
    try:
        trace = load_request_trace(demand, scenario.base_dir, scenario.horizon_s, where)
    except ScenarioError:
        return rows
    return _safe(trace.n_requests)


def _safe(value: float) -> float:
    """Float products overflow to inf, never raise; a nan (inf x 0) counts as unbounded too."""
    value = float(value)
    return math.inf if math.isnan(value) else value


def _facilities(scenario: Scenario | Federation) -> list[tuple[str, Facility]]:
    """Each facility of the scenario with the field path it is under."""
    if not isinstance(scenario, Scenario):  # a federation
        return [(f"sites.{k}.facility", site.facility) for k, site in enumerate(scenario.sites)]
    return [("facility", scenario.facility)]


def estimate(scenario: Scenario | Federation) -> Estimate:
    """The expected size of running ``scenario`` (reads only trace row counts, never builds the model)."""
    from gigafactory_sim.inference.demand import ConstantDemand, DiurnalDemand, TraceDemand
    from gigafactory_sim.workload.arrivals import DiurnalArrivals
    from gigafactory_sim.workload.traces import TraceTraining, resolve_data_path

    horizon = scenario.horizon_s
    est = Estimate()
    for i, source in enumerate(scenario.workload.training):
        where = f"workload.training.{i}"
        if isinstance(source, TraceTraining):
            rows = float(count_rows(resolve_data_path(source.path, scenario.base_dir)))
            jobs = min(rows, float(source.max_jobs)) if source.max_jobs is not None else rows
            est.jobs += jobs
            est.add(where, f"{_count(jobs)} trace jobs", EVENTS_PER_JOB * jobs, BYTES_PER_JOB * jobs)
            continue
        arrivals = source.arrivals
        jobs = _safe(arrivals.mean_rate_per_s() * horizon)
        candidates = 0.0
        if isinstance(arrivals, DiurnalArrivals):  # thinning draws candidates at the peak rate
            candidates = _safe(2.0 * arrivals.mean_rate_per_hour / 3600.0 * max(1.0, arrivals.weekend_factor) * horizon)
        est.jobs += jobs
        est.add(
            f"{where}.arrivals",
            f"{_count(jobs)} jobs arriving over the horizon",
            EVENTS_PER_JOB * jobs,
            BYTES_PER_JOB * jobs + BYTES_PER_CANDIDATE * candidates,
        )
    for i, svc in enumerate(scenario.workload.inference):
        where = f"workload.inference.{i}"
        demand = svc.demand
        rows = 0.0
        if isinstance(demand, TraceDemand):
            rows = float(count_rows(resolve_data_path(demand.path, scenario.base_dir)))
            rows = min(rows, float(demand.max_rows)) if demand.max_rows is not None else rows
            requests = _trace_requests(demand, scenario, where, rows)
        elif isinstance(demand, ConstantDemand | DiurnalDemand):
            rate = demand.rate_per_s if isinstance(demand, ConstantDemand) else demand.mean_rate_per_s
            requests = _safe(rate * horizon)
        else:  # pragma: no cover - a new demand kind: count its control ticks only
            requests = 0.0
        ticks = _safe(horizon / svc.control_interval)
        if svc.fidelity == "discrete":
            est.add(
                f"{where}.demand",
                f"{_count(requests)} requests, each simulated",
                ticks + EVENTS_PER_DISCRETE_REQUEST * requests,
                BYTES_PER_DISCRETE_REQUEST * requests,
            )
        else:
            stored = rows if isinstance(demand, TraceDemand) else 0.0  # the trace's own rows (loops are counted)
            est.add(
                f"{where}.control_interval",
                f"{_count(ticks)} control intervals",
                2.0 * ticks,
                BYTES_PER_REQUEST * stored + 200.0 * ticks,
            )
    facilities = _facilities(scenario)
    for at, facility, i, cluster in ((at, f, i, c) for at, f in facilities for i, c in enumerate(f.clusters)):
        failures = facility.failures_of(cluster)
        if failures is None:
            continue
        where = f"{at}.clusters.{i}.failures" if cluster.failures is not None else f"{at}.failures"
        n = _safe(failures.rate_per_node_s(cluster.gpus_per_node) * cluster.nodes * horizon)
        est.add(where, f"{_count(n)} node failures", EVENTS_PER_FAILURE * n, 100.0 * n)
        for j, window in enumerate(failures.maintenance):
            count = 1.0 if window.every is None else _safe(horizon / window.every + 1)
            est.add(
                f"{where}.maintenance.{j}",
                f"{_count(count)} maintenance windows",
                count * (2.0 + window.nodes),
                100.0 * count,
            )
    rows = _safe(horizon / scenario.report.interval)
    est.report_rows = rows
    n_clusters = sum(len(f.clusters) for _, f in facilities)
    channels = 6 * n_clusters + 30 * len(facilities) + 8 * len(scenario.workload.inference)
    est.add("report.interval", f"{_count(rows)} report rows of {channels} columns", rows, rows * channels * 8.0 * 4)
    return est


def check_limits(scenario: Scenario | Federation, limits: Limits, file: str | None = None) -> Estimate:
    """:func:`estimate` ``scenario``; raise :class:`ScenarioError` (every limit exceeded, with the estimate,
    the field that dominates it and how to raise the limit) if it is beyond ``limits``."""
    from gigafactory_sim.config.loader import locate_problems

    est = estimate(scenario)
    where = file or scenario.source_file
    problems: list[InputProblem] = []

    def biggest(index: int) -> tuple[str, str]:
        top = max(est.parts, key=lambda p: p[index])
        return top[0], top[1]

    if not est.events <= limits.max_events:
        path, what = biggest(2)
        problems.append(
            InputProblem(
                where,
                None,
                path,
                f"the run would handle {est.summary()}: more than the limit of {_count(limits.max_events)} events "
                f"(mostly {what}). Shorten the horizon or lower the rate, or raise the limit with --max-events "
                f"or `limits: {{max_events: ...}}` in the scenario",
            )
        )
    if not est.memory_bytes <= limits.max_memory_bytes:
        path, what = biggest(3)
        problems.append(
            InputProblem(
                where,
                None,
                path,
                f"the run would need {est.summary()}: more than the limit of {_bytes(limits.max_memory_bytes)} "
                f"(mostly {what}). Shorten the horizon or lower the rate, or raise the limit with --max-memory "
                f"or `limits: {{max_memory: 32GB}}` in the scenario",
            )
        )
    if problems:
        raise locate_problems(ScenarioError(problems), scenario)
    return est
