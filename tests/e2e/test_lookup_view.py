"""Moved to tests/api/test_lookup_view.py (the API tier). The helpers stay importable from here
for end-to-end tests that use them on a real server."""

from tests.api.test_lookup_view import _answered_from_view, _assert_truth

__all__ = ["_answered_from_view", "_assert_truth"]
