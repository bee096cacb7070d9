"""Benchmarks, studies and experiment drivers of tacocc_ros; run each with `python -m benchmarks.<folder>.<script>`."""
