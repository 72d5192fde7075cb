"""The soak: serve replicas, a scheduler, Redis, the real API server and Slack under faults,
judged against the log of writes that really landed (`python -m tests.soak`, `make soak`)."""
