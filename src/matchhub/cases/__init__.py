"""Due process: a flag is an indication, verified, notified and decided (docs/cases.md)."""
