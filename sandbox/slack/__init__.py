"""An emulated Slack for the sandbox and the tests: Web API, signed deliveries, a chat page."""

from sandbox.slack.errors import ApiError
from sandbox.slack.faults import SlackFault
from sandbox.slack.payloads import block_actions_body, slash_command_body
from sandbox.slack.server import SlackEmulator
from sandbox.slack.signing import sign_request
from sandbox.slack.workspace import ApiCall, Delivery, Message, ResponseUrlPost

__all__ = [
    "ApiCall",
    "ApiError",
    "Delivery",
    "Message",
    "ResponseUrlPost",
    "SlackEmulator",
    "SlackFault",
    "block_actions_body",
    "sign_request",
    "slash_command_body",
]
