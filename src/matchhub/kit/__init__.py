"""Helpers every domain uses: errors, database sessions, ORM base, time."""
