"""Liveness and readiness: the only routes without a scope."""
