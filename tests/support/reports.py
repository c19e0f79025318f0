"""Lines the slow suites print in the test run's summary (tests/conftest.py prints them)."""

FUZZ_REPORT: list[str] = []  # API fuzzing (tests/contract)
FAULT_REPORT: list[str] = []  # fault injection, one line per scenario (tests/faults)
