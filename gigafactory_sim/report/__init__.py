"""Run directories: write a run's data and report (:func:`write_run`), record a failure
(:func:`write_failure`), read a run back (:func:`load_run`) and rebuild its report (:func:`rerender`)."""

from gigafactory_sim.report.loader import RunData, load_run, rerender
from gigafactory_sim.report.writer import write_failure, write_run

__all__ = ["RunData", "load_run", "rerender", "write_failure", "write_run"]
