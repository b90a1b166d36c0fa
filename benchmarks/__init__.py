"""matchhub's benchmarks: each figure beside its baseline, measured in the same run.

    python -m benchmarks               # the quick run (a few minutes on 2 cores)
    python -m benchmarks --full        # 7M beneficiaries x 50M partner rows, six providers
    python -m benchmarks --only ingest --repeat 5 --json out.json

Never part of the test suite's pass/fail, and never a dependency of matchhub: this package
imports matchhub, never the other way round. Optional peers (openmined-psi) come from the
``bench`` extra; a figure whose peer is missing says so and is skipped.
"""
