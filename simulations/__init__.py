"""Simulations: Hydra entry point, data sets, partitions, metrics and benchmarks.

``simulations.simulate(partitions, strategy, ...)`` is the programmatic entry
(see :func:`simulations.engine.simulate`). It is imported on first use, so that
the data set and partition modules load without Flower.
"""

__all__ = ["Simulation", "simulate"]


def __getattr__(name: str):
    if name in __all__:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'simulations' has no attribute {name!r}")
