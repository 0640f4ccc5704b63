"""se-flow's benchmarks: `python -m benchmarks.run [--quick]` runs them all (see README.md)."""
