"""Benchmarks: ``python -m bench.run`` prints a table and writes bench/results/*.json. Not tests."""
