"""The broker's own processes: who is running, as what, seen when (a heartbeat row each)."""
