"""Adapters: the edges that read and write Redis, Kubernetes and Prometheus for the domain."""
