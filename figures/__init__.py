"""Plotting: pure functions from result records to matplotlib figures, one shared style."""

from figures import style  # noqa: E402,F401  first, so that a bad MPLBACKEND falls back to Agg
