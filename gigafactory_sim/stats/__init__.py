"""Statistics of one run after it has finished: steady-state figures after a warm-up, batch-means confidence."""

from gigafactory_sim.stats.config import StatisticsConfig
from gigafactory_sim.stats.steady import batch_means, mser5, statistics_section

__all__ = ["StatisticsConfig", "batch_means", "mser5", "statistics_section"]
