"""A ServerApp of one's own that uses the installed FedGMMTree strategy."""
