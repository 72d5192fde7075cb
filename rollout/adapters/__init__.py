"""Adapters: the ports implemented over Redis and Kubernetes."""
