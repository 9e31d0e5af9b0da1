"""Plotting: pure functions from result records to matplotlib figures, one shared style."""
