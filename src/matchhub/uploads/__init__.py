"""Snapshots pushed by providers (tokens with flags) and rosters registered by consumers."""
