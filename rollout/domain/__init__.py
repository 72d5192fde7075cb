"""The rollout domain: pure decisions over data, no I/O."""
