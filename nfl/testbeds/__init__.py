"""Testbeds: the unit the pipeline runs on (data with train / validation / test for a base and a
shifted task, a model, a loss and its metric). ``gpt_model`` and ``corpus`` are the ``gpt`` testbed's
model and text."""
