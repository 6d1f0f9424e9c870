"""The test processes' logging: structured logs at INFO, loggers never cached (``capture_logs`` in a
test sees every logger, whichever tests ran before it in the same process)."""

import structlog

from pipeline import logs


def configure_test_logs() -> None:
    logs.configure("INFO", json_output=False)  # the runner's debug lines stay out of test output
    structlog.configure(cache_logger_on_first_use=False)
