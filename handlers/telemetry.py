"""What the Slack edge counts, as a protocol: `bot.metrics` implements it with Prometheus.

Handlers report what happened (a request, a Slack or Kubernetes error) without knowing where
the numbers go, and unit tests pass the no-op.
"""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def request(self, kind: str, action: str) -> None:
        """A slash command (`kind="command"`) or a click (`kind="button"`) with its verb."""
        ...

    def slack_error(self, method: str) -> None: ...

    def kube_error(self) -> None: ...

    def denial(self, action: str) -> None: ...


class NoTelemetry:
    def request(self, kind: str, action: str) -> None:
        pass

    def slack_error(self, method: str) -> None:
        pass

    def kube_error(self) -> None:
        pass

    def denial(self, action: str) -> None:
        pass
