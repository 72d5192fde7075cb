"""Edges of the rollout layer: they translate between the domain and the outside world."""
