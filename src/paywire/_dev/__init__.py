"""Development helpers shared by the tests and the benchmarks (not public API)."""
