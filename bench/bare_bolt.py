"""`python -m bench.bare_bolt PORT SIGNING_SECRET`: the ack benchmark's floor, in a process of
its own as the bot is: a Bolt app whose `/rollout` listener only acks, in the request thread
(`process_before_response`, the least Bolt can do), under waitress with the bot's 8 threads."""

from __future__ import annotations

import sys

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.authorization import AuthorizeResult
from waitress.server import create_server

THREADS = 8


def bare_app(signing_secret: str) -> App:
    app = App(signing_secret=signing_secret, token_verification_enabled=False,
              authorize=lambda **kw: AuthorizeResult(enterprise_id=None,
                                                     team_id=kw.get("team_id"),
                                                     bot_token="xoxb-bench"),  # noqa: S106
              process_before_response=True)

    def only_ack(ack: Ack) -> None:
        ack()

    app.command("/rollout")(only_ack)
    return app


def main() -> None:
    port, secret = int(sys.argv[1]), sys.argv[2]
    server = create_server(SlackRequestHandler(bare_app(secret)), host="127.0.0.1", port=port,
                           threads=THREADS, ident="bare-bolt")
    server.run()


if __name__ == "__main__":
    main()
