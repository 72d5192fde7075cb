"""Adapters: the edges that read and write Redis and Kubernetes for the domain."""
