"""Test-wide setup: structured logs at INFO (``tests.logsetup``)."""

from tests.logsetup import configure_test_logs

configure_test_logs()
