"""The test processes' logging: structured logs at INFO (the runner's debug lines stay out of test
output), through stdlib logging, where ``caplog`` reads them."""

from pipeline import logs


def configure_test_logs() -> None:
    logs.configure("INFO", json_output=False)
