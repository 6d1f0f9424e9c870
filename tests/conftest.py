"""Test-wide setup: structured logs at INFO (the runner's debug lines stay out of test output)."""

from pipeline import logs

logs.configure("INFO", json_output=False)
