"""Printed performance measurements (not tests): ``python -m benchmarks.<name>``."""
