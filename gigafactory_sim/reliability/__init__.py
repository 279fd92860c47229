"""Failures, repairs, maintenance, hot spares and checkpoint/restart."""
