"""Prometheus metrics: counts and timings only, never a token, identifier or agency record."""
