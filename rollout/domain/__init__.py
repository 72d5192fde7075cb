"""The pure rollout domain: decisions as data, no I/O."""
