"""FedGMMTree: federated hierarchical clustering with a tree of Gaussian mixtures.

The numpy core (everything here but ``client_app`` and ``server_app``) imports no
Flower, Ray or Hydra.
"""

from ._protocol import GrowthParams, TreeGrower, client_step
from ._stats import Moments
from ._tree import Tree
from .estimator import GMMTree
from .exceptions import DataWarning, FederationError
from .validation import check_client_data

__all__ = [
    "DataWarning",
    "FederationError",
    "GMMTree",
    "GrowthParams",
    "Moments",
    "Tree",
    "TreeGrower",
    "check_client_data",
    "client_step",
]

__version__ = "0.1.0"
