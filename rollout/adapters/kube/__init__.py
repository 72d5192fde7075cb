"""Kubernetes traffic adapters: one fenced writer and one adapter per target kind."""
