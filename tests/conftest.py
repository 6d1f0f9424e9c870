"""Test-wide setup: structured logs at INFO, loggers not cached (``tests.logsetup``)."""

from tests.logsetup import configure_test_logs

configure_test_logs()
