"""The rollout domain: pure decisions over data, no I/O (import-linter keeps it so)."""
