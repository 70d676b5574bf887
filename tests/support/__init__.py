"""Helpers for the test suite and the benchmark harness (not used by the service)."""
