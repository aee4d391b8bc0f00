"""Benchmarks and chaos runs; each prints its figures (see bench/README.md)."""
