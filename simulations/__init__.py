"""Simulations: Hydra entry point, data sets, partitions, metrics and benchmarks."""
