"""Floating-point helpers whose results do not depend on the machine (:mod:`.libm`)."""
