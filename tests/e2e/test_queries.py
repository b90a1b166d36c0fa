"""Moved to tests/api/test_queries.py (the API tier). The helpers stay importable from here for
end-to-end tests that build the same world on a real server (``_world(server)``)."""

from tests.api.test_queries import LOAN, PURPOSE, World, _flags, _lookup, _world

__all__ = ["LOAN", "PURPOSE", "World", "_flags", "_lookup", "_world"]
