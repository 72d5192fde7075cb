"""The embedded world for the demo and the tests: emulated Kubernetes API, Slack Web API, Redis."""
