"""Warnings and errors of fedgmmtree."""


class DataWarning(UserWarning):
    """The data has a property that the model works around (and how to fix it)."""


class FederationError(RuntimeError):
    """A federated fit cannot go on: too few clients answered, or none holds data."""
