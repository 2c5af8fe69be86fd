"""Benchmarks (not tests): `make bench` runs bench/run.py and rewrites bench/RESULTS.md."""
