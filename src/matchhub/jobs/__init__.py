"""Bulk match jobs: the whole roster against every provider at once, in the background."""
