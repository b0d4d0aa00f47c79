"""Flower server strategies: ``FedGMMTree`` and the baselines."""

from .fedgmmtree import FedGMMTree

__all__ = ["FedGMMTree"]
