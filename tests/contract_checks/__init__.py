"""Contracts checked against real runs (an outside audit; each test failed before its fix)."""
